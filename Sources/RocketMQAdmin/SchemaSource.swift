/// Where type information comes from: the server's reflection service (loaded lazily, symbol by
/// symbol) or a fixed set of files (`.proto` sources compiled by ``ProtoSourceCompiler``, or
/// embedded descriptors). The one place `list`, `describe` and invocation look types up.
///
/// Value type; resolving a symbol through reflection adds its files to ``pool``, so it is `mutating`.
public struct SchemaSource: Sendable {
    /// Every type loaded so far.
    public private(set) var pool: DescriptorPool
    /// Set when types come from the server.
    public let reflection: ReflectionClient?

    /// Types from the server's reflection service.
    public static func reflection(_ client: ReflectionClient) -> SchemaSource {
        SchemaSource(pool: DescriptorPool(), reflection: client)
    }

    /// Types from files only; the server is never asked.
    public static func files(_ pool: DescriptorPool) -> SchemaSource {
        SchemaSource(pool: pool, reflection: nil)
    }

    /// Service names, sorted: the server's list with reflection, else every service in the files.
    public func listServices() async throws -> [String] {
        if let reflection { return try await reflection.listServices() }
        return pool.serviceNames
    }

    /// `pkg.Service.Method` for each method of `service`, in declaration order.
    /// - Throws: ``AdminError/unknownSymbol(_:)`` when there is no such service.
    public mutating func listMethods(of service: String) async throws -> [String] {
        try await load(service)
        guard let found = pool.service(named: service) else { throw AdminError.unknownSymbol(service) }
        return found.methods.map(\.fullName)
    }

    /// Makes sure the files declaring `symbol` are in the pool (a no-op for file sources).
    public mutating func load(_ symbol: String) async throws {
        let name = DescriptorPool.trim(symbol)
        guard let reflection, !pool.knows(name) else { return }
        try await reflection.load(symbol: name, into: &pool)
    }

    /// The method named `pkg.Service/Method` or `pkg.Service.Method`, with its types loaded.
    /// - Throws: ``AdminError/unknownService(_:)``, ``AdminError/unknownMethod(service:method:)``,
    ///   ``AdminError/invalidMethodName(_:)``.
    public mutating func method(_ name: String) async throws -> ServiceDescriptor.Method {
        let (service, _) = try DescriptorPool.splitMethod(name)
        do {
            try await load(service)
        } catch AdminError.unknownSymbol {
            throw AdminError.unknownService(service)
        }
        return try pool.method(name)
    }

    /// grpcurl's `describe` text for `symbol`.
    public mutating func describe(_ symbol: String) async throws -> String {
        var name = DescriptorPool.trim(symbol)
        do {
            try await load(name)
        } catch AdminError.unknownSymbol {
            // `pkg.Service/Method` is not a symbol reflection knows; its service is.
            guard let (service, method) = try? DescriptorPool.splitMethod(name) else { throw AdminError.unknownSymbol(symbol) }
            try await load(service)
            name = "\(service).\(method)"
        }
        return try SchemaPrinter(pool: pool).describe(name)
    }

    /// Fetches the file declaring `typeName` when the pool lacks it (used for `Any` payloads).
    /// Returns whether the type is now known.
    public mutating func loadType(_ typeName: String) async -> Bool {
        if pool.message(named: typeName) != nil { return true }
        guard let reflection else { return false }
        do {
            try await reflection.load(symbol: typeName, into: &pool)
        } catch {
            return false
        }
        return pool.message(named: typeName) != nil
    }
}

extension DescriptorPool {
    /// Whether `name` is a service, message or enum of the pool (or a method or field of one).
    public func knows(_ symbol: String) -> Bool {
        let name = DescriptorPool.trim(symbol).replacingSlashes
        if service(named: name) != nil || message(named: name) != nil || enumType(named: name) != nil { return true }
        guard let dot = name.lastIndex(of: ".") else { return false }
        let parent = String(name[..<dot])
        return service(named: parent) != nil || message(named: parent) != nil
    }
}

extension String {
    /// `pkg.Service/Method` as the symbol `pkg.Service.Method`.
    var replacingSlashes: String { String(map { $0 == "/" ? "." : $0 }) }
}
