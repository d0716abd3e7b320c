import Foundation
import Synchronization

/// A real `mqbroker` or `mqnamesrv` child process, found next to the test bundle, started on a
/// free port; its stdout is read until it says where it listens. Killed by `stop()` / `kill()`.
final class ServerProcess: Sendable {
    let name: String
    let arguments: [String]
    private let process: Process
    private let output: LockedText
    let port: Int

    var endpoint: String { "127.0.0.1:\(port)" }

    /// Starts `name` with `arguments` and waits (up to 30 s) for `"<name> listening on 127.0.0.1:PORT"`.
    init(_ name: String, _ arguments: [String]) throws {
        self.name = name
        self.arguments = arguments
        let process = Process()
        process.executableURL = try Self.binary(name)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["ROCKETMQ_LOG_LEVEL"] = "warning"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        // ROCKETMQ_TEST_SERVER_LOGS=<dir> keeps each server's stderr (at info level) for debugging.
        if let logs = ProcessInfo.processInfo.environment["ROCKETMQ_TEST_SERVER_LOGS"] {
            let path = logs + "/\(name)-\(UUID().uuidString.prefix(8)).log"
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: path) ?? FileHandle.nullDevice
            environment["ROCKETMQ_LOG_LEVEL"] = "info"
            process.environment = environment
        } else {
            process.standardError = FileHandle.nullDevice
        }
        let output = LockedText()
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            output.append(String(decoding: data, as: UTF8.self))
        }
        try process.run()
        self.process = process
        self.output = output
        let marker = "\(name) listening on 127.0.0.1:"
        let deadline = Date().addingTimeInterval(30)
        var found: Int?
        while found == nil, Date() < deadline, process.isRunning {
            found = Self.port(after: marker, in: output.value)
            if found == nil { Thread.sleep(forTimeInterval: 0.02) }
        }
        guard let found else {
            process.terminate()
            throw TestFailure("\(name) did not start: \(output.value)")
        }
        self.port = found
    }

    /// The port of the web console the process announced (`console listening on http://127.0.0.1:PORT/`),
    /// waiting up to 10 s for the line.
    func consolePort() async -> Int? {
        for _ in 0..<500 {
            if let port = Self.port(after: "console listening on http://127.0.0.1:", in: output.value) { return port }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// The port number right after `marker` in a process's output, once it is there.
    private static func port(after marker: String, in text: String) -> Int? {
        guard let range = text.range(of: marker) else { return nil }
        return Int(text[range.upperBound...].prefix { $0.isNumber })
    }

    /// A broker in `--dev` mode (auto-created topics and groups, in-process NameServer on a free port).
    static func devBroker(data: String, port: Int = 0, config: String? = nil, console: Bool = false, extra: [String] = []) throws -> ServerProcess {
        var arguments = ["--data", data, "--port", "\(port)", "--dev", "--namesrv-port", "0", "--segment-size", "\(8 << 20)"]
        arguments += console ? ["--console-port", "0"] : ["--no-console"]
        if let config { arguments += ["--config", config] }
        return try ServerProcess("mqbroker", arguments + extra)
    }

    /// The exit status once the process ended (after `stop()` or `kill()`).
    var exitStatus: Int32 { process.terminationStatus }

    /// SIGKILL, no chance to flush or say goodbye.
    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// SIGSTOP: the process keeps its sockets open but answers nothing (a hung broker).
    /// Returns once every thread has stopped (at most 5 s): the stop is asynchronous, and on a
    /// busy machine a thread already running went on answering a request sent just after
    /// `kill` returned (a CI run saw a send succeed on the "hung" broker).
    func pause() {
        guard process.isRunning else { return }
        let pid = process.processIdentifier
        Foundation.kill(pid, SIGSTOP)
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline, !Self.allThreadsStopped(pid) { usleep(2_000) }
    }

    /// Whether every thread of `pid` is stopped ("T" in its /proc stat).
    private static func allThreadsStopped(_ pid: Int32) -> Bool {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task"), !tasks.isEmpty else { return false }
        return tasks.allSatisfy { task in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            // The state is the first field after the command name, which may hold spaces.
            return stat[stat.index(after: close)...].split(separator: " ").first == "T"
        }
    }

    /// SIGCONT after ``pause()``.
    func resume() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGCONT) }
    }

    /// SIGTERM and wait (SIGKILL after 5 s).
    func stop() {
        guard process.isRunning else { return }
        resume()  // a paused process would not act on SIGTERM
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        kill()
    }

    deinit { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }

    /// `name` in the build folder: walk up from the test bundle (or use `ROCKETMQ_BIN_DIR`).
    static func binary(_ name: String) throws -> URL {
        if let directory = ProcessInfo.processInfo.environment["ROCKETMQ_BIN_DIR"] {
            return URL(fileURLWithPath: directory).appendingPathComponent(name)
        }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = directory.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        throw TestFailure("cannot find the \(name) binary near \(CommandLine.arguments[0]); build it or set ROCKETMQ_BIN_DIR")
    }
}

/// Runs a command-line tool built with the servers (`mqadmin`) to its end (at most 30 s): its exit
/// status and what it printed, stdout then stderr.
func runTool(_ name: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = try ServerProcess.binary(name)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let deadline = Date().addingTimeInterval(30)
    while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile() + err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return (process.terminationStatus, output)
}
