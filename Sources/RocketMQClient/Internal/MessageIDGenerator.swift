import Foundation

/// Producer-side message ids: `01` (the RocketMQ 5 id version) followed by 32 upper-case hex
/// digits of a random UUID, 34 characters like the official clients' ids.
enum MessageIDGenerator {
    static func next() -> String {
        "01" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
    }
}
