import CProtobufC
import RocketMQProtoC

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// All pointer work against protobuf-c lives in this file. Generated code only calls the typed
// accessors of `CMessageReader` / `CMessageWriter` with field numbers; offsets, quantifiers and
// memory come from protobuf-c's own descriptors, so the Swift side never depends on the C names
// protoc-c picks for struct members.

/// A protobuf-c message descriptor, found by the message's full protobuf name.
///
/// Descriptors are immutable constant data compiled into `RocketMQProtoC`, which is why sharing
/// the pointer across threads is safe.
public struct CMessageType: @unchecked Sendable {
    @usableFromInline let descriptor: UnsafePointer<ProtobufCMessageDescriptor>

    /// The descriptor protoc-c generated for `fullName` (for example `grpc.health.v1.HealthCheckRequest`).
    ///
    /// A missing descriptor means `Sources/RocketMQProtoC` is stale against `Protos/`
    /// (`Scripts/gen-protos.sh` regenerates it), a build defect rather than a runtime condition.
    public static func named(_ fullName: String) -> CMessageType {
        guard let descriptor = CDescriptorRegistry.all[fullName] else {
            preconditionFailure("no protobuf-c descriptor for \(fullName): run Scripts/gen-protos.sh")
        }
        return CMessageType(descriptor: descriptor)
    }

    /// The full protobuf name the descriptor was generated for.
    public var fullName: String { String(cString: descriptor.pointee.name) }
}

private enum CDescriptorRegistry {
    // Immutable after its one-time initialisation, so unsafe-nonisolated access is fine.
    nonisolated(unsafe) static let all: [String: UnsafePointer<ProtobufCMessageDescriptor>] = {
        var table: [String: UnsafePointer<ProtobufCMessageDescriptor>] = [:]
        guard let list = rocketmq_protoc_message_descriptors() else { return table }
        var index = 0
        while let descriptor = list[index] {
            table[String(cString: descriptor.pointee.name)] = descriptor
            index += 1
        }
        return table
    }()
}

/// A message type whose values move through protobuf-c.
///
/// Generated messages conform; the runtime supplies their `ProtoMessage` encoding on top of
/// `init(reading:)` and `write(to:)`.
public protocol CBridgedMessage: ProtoMessage {
    /// The protobuf-c descriptor for this type.
    static var cMessageType: CMessageType { get }
    /// Builds the value from an unpacked C message of this type.
    init(reading message: CMessageReader)
    /// Fills an initialised C message of this type; memory comes from the writer's arena.
    func write(to message: CMessageWriter)
}

// Inlinable so that each generated message's conformance gets its own specialized copy: generic
// over `Self`, these paid runtime generic-metadata lookups and value-witness calls per message.
extension CBridgedMessage {
    @inlinable
    public init(serializedBytes bytes: UnsafeRawBufferPointer) throws {
        let descriptor = Self.cMessageType.descriptor
        if let problem = WireStringCheck.problem(in: bytes, descriptor: descriptor) {
            throw ProtoDecodingError(messageName: Self.protoMessageName, reason: problem)
        }
        let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        self = try withUnpackAllocator { allocator in
            guard let unpacked = protobuf_c_message_unpack(descriptor, allocator, bytes.count, base) else {
                throw ProtoDecodingError(messageName: Self.protoMessageName, reason: "invalid protobuf encoding (\(bytes.count) bytes)")
            }
            defer { freeUnpacked(unpacked, allocator) }
            return Self(reading: CMessageReader(message: UnsafeRawPointer(unpacked), descriptor: descriptor))
        }
    }

    @inlinable
    public func serializedBytes() -> [UInt8] {
        // The arena's first block is on the stack: a small message's C tree costs no heap block.
        withUnsafeTemporaryAllocation(byteCount: ProtoArena.scratchSize, alignment: ProtoArena.alignment) { scratch in
            let arena = ProtoArena(scratch: scratch)
            let message = arena.message(of: Self.cMessageType.descriptor)
            write(to: CMessageWriter(message: message, descriptor: Self.cMessageType.descriptor, arena: arena))
            let packed = message.assumingMemoryBound(to: ProtobufCMessage.self)
            let size = protobuf_c_message_get_packed_size(packed)
            return ByteArray.make(count: size) { buffer in
                let written = buffer.baseAddress.map { protobuf_c_message_pack(packed, $0) } ?? 0
                precondition(written == size, "protobuf-c packed \(written) bytes of \(size)")
            }
        }
    }
}

// MARK: - Unpacking

/// Where `protobuf_c_message_unpack` puts a message while it is read into Swift values: first a
/// scratch area on the stack, then (for what does not fit, such as large `bytes` fields) `malloc`.
/// A small message (most requests) then costs no heap allocation to decode; the unpacked message
/// lives only until `init(reading:)` has copied it.
@usableFromInline
struct UnpackScratch {
    @usableFromInline static let byteCount = 1024
    @usableFromInline let start: UnsafeMutableRawPointer
    @usableFromInline var used = 0
    /// Allocations that did not fit and came from `malloc`.
    @usableFromInline var spilled = 0

    @usableFromInline init(start: UnsafeMutableRawPointer) { self.start = start }
}

/// Frees what unpacking `message` with `allocator` (``withUnpackAllocator(_:)``'s) allocated on the
/// heap. When everything fit in the scratch, the usual case, there is nothing to free, and
/// protobuf-c's walk of the tree to free each part was ~1,000 instructions of every decode.
@inlinable
func freeUnpacked(_ message: UnsafeMutablePointer<ProtobufCMessage>, _ allocator: UnsafeMutablePointer<ProtobufCAllocator>?) {
    if let state = allocator?.pointee.allocator_data?.assumingMemoryBound(to: UnpackScratch.self), state.pointee.spilled == 0 { return }
    protobuf_c_message_free_unpacked(message, allocator)
}

/// Runs `body` with a `ProtobufCAllocator` over an ``UnpackScratch`` valid for the call only:
/// everything allocated with it must be freed (``freeUnpacked(_:_:)``) before `body` returns.
@inlinable
func withUnpackAllocator<R>(_ body: (UnsafeMutablePointer<ProtobufCAllocator>?) throws -> R) rethrows -> R {
    try withUnsafeTemporaryAllocation(byteCount: UnpackScratch.byteCount, alignment: 16) { scratch in
        guard let start = scratch.baseAddress else { return try body(nil) }
        var state = UnpackScratch(start: start)
        return try withUnsafeMutablePointer(to: &state) { statePointer in
            var allocator = ProtobufCAllocator(
                alloc: { data, size in
                    guard let state = data?.assumingMemoryBound(to: UnpackScratch.self) else { return malloc(size) }
                    let offset = (state.pointee.used + 15) & ~15
                    guard size <= UnpackScratch.byteCount - offset else {
                        state.pointee.spilled += 1
                        return malloc(size)
                    }
                    state.pointee.used = offset + size
                    return state.pointee.start + offset
                },
                free: { data, pointer in
                    guard let pointer else { return }
                    if let state = data?.assumingMemoryBound(to: UnpackScratch.self),
                        pointer >= state.pointee.start, pointer < state.pointee.start + UnpackScratch.byteCount
                    {
                        return  // scratch: released all at once when the call ends
                    }
                    free(pointer)
                },
                allocator_data: UnsafeMutableRawPointer(statePointer)
            )
            return try body(&allocator)
        }
    }
}

// MARK: - Arena

/// Memory for one C message tree being built for packing: strings, arrays and sub-messages.
///
/// Everything is freed together when the arena goes away, after `pack` has returned. Not
/// thread-safe; an encode uses its own arena on the calling thread. The first block may be
/// scratch memory the caller owns (on its stack), used before any heap block.
public final class ProtoArena {
    // `@exclusivity(unchecked)`: an arena is used by one encode on one thread, never re-entered
    // while a property is being mutated; the runtime's access checks showed in encode profiles.
    /// The first block, apart so that an arena of one block (most messages) allocates no array.
    @exclusivity(unchecked) private var firstBlock: UnsafeMutableRawPointer?
    @exclusivity(unchecked) private var blocks: [UnsafeMutableRawPointer] = []
    @exclusivity(unchecked) private var cursor: UnsafeMutableRawPointer?
    @exclusivity(unchecked) private var remaining = 0
    private static let blockSize = 4096
    @usableFromInline static let alignment = 16
    /// Bytes of caller scratch an encode starts with: most messages' C trees fit (a block of
    /// `blockSize` on the heap was a `malloc` and `free` per encode, above glibc's per-thread cache).
    @usableFromInline static let scratchSize = 2048

    public init() {}

    /// An arena whose first block is `scratch` (not freed by the arena; it must outlive it).
    @usableFromInline init(scratch: UnsafeMutableRawBufferPointer) {
        cursor = scratch.baseAddress
        remaining = cursor == nil ? 0 : scratch.count
    }

    deinit {
        firstBlock?.deallocate()
        for block in blocks { block.deallocate() }
    }

    private func keep(_ block: UnsafeMutableRawPointer) {
        if firstBlock == nil {
            firstBlock = block
        } else {
            blocks.append(block)
        }
    }

    /// Zeroed, 16-byte aligned memory living as long as the arena.
    @usableFromInline func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        let size = max(16, (byteCount + Self.alignment - 1) & ~(Self.alignment - 1))
        if size > Self.blockSize / 4 {
            let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: Self.alignment)
            block.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            keep(block)
            return block
        }
        if size > remaining {
            // Zeroed piece by piece as it is handed out: a small message uses a few hundred bytes
            // of the block, and zeroing all of it showed in encode profiles.
            let block = UnsafeMutableRawPointer.allocate(byteCount: Self.blockSize, alignment: Self.alignment)
            keep(block)
            cursor = block
            remaining = Self.blockSize
        }
        // `cursor` is set whenever `remaining` > 0.
        let result = cursor.unsafelyUnwrapped
        result.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        cursor = result + size
        remaining -= size
        return result
    }

    /// A new C message of the described type, initialised to its defaults.
    @usableFromInline func message(of descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> UnsafeMutableRawPointer {
        let memory = allocate(byteCount: descriptor.pointee.sizeof_message)
        protobuf_c_message_init(descriptor, memory)
        return memory
    }

    /// A NUL-terminated copy of `string`.
    @usableFromInline func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        var string = string
        return string.withUTF8 { utf8 in
            let memory = allocate(byteCount: utf8.count + 1).assumingMemoryBound(to: CChar.self)
            utf8.withMemoryRebound(to: CChar.self) { source in
                if let base = source.baseAddress { memory.update(from: base, count: source.count) }
            }
            memory[utf8.count] = 0
            return memory
        }
    }

    /// A copy of `bytes` (nil for an empty array, which protobuf-c reads as empty).
    @usableFromInline func bytes(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        guard !bytes.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let memory = allocate(byteCount: bytes.count).assumingMemoryBound(to: UInt8.self)
        bytes.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { memory.update(from: base, count: source.count) }
        }
        return ProtobufCBinaryData(len: bytes.count, data: memory)
    }
}

// MARK: - Field lookup

/// The descriptor of field `number`, which the generated code knows the type has.
@inlinable
func fieldDescriptor(
    _ number: Int32, in descriptor: UnsafePointer<ProtobufCMessageDescriptor>
) -> UnsafePointer<ProtobufCFieldDescriptor> {
    guard let field = knownFieldDescriptor(UInt32(bitPattern: number), in: descriptor) else {
        missingField(number, in: descriptor)
    }
    return field
}

/// The descriptor of field `number`, nil for a field the type does not have (an unknown field
/// on the wire). protoc-c lists a message's fields in number order, so when they are numbered 1,
/// 2, 3, … (most messages) field `n` is the `n`th: that is checked and used first, and
/// protobuf-c's search (~45 instructions a call, a dozen calls a message) is the fallback for gaps.
@inlinable
func knownFieldDescriptor(
    _ number: UInt32, in descriptor: UnsafePointer<ProtobufCMessageDescriptor>
) -> UnsafePointer<ProtobufCFieldDescriptor>? {
    let index = Int(number) &- 1
    if index >= 0, index < Int(descriptor.pointee.n_fields), let fields = descriptor.pointee.fields, fields[index].id == number {
        return fields + index
    }
    return protobuf_c_message_descriptor_get_field(descriptor, number)
}

@usableFromInline
func missingField(_ number: Int32, in descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> Never {
    preconditionFailure("\(String(cString: descriptor.pointee.name)) has no field \(number): RocketMQProtoC is stale")
}

extension ProtobufCFieldDescriptor {
    @inlinable var isOneofMember: Bool { flags & UInt32(PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue) != 0 }
    @inlinable var messageDescriptor: UnsafePointer<ProtobufCMessageDescriptor> {
        descriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
    }
}

// MARK: - Reading

/// Read-only access to an unpacked protobuf-c message, field by field number.
///
/// Valid only while the unpacked message lives (inside `init(reading:)`); every value it returns
/// is a Swift copy.
public struct CMessageReader {
    @usableFromInline let message: UnsafeRawPointer
    @usableFromInline let descriptor: UnsafePointer<ProtobufCMessageDescriptor>

    @usableFromInline init(message: UnsafeRawPointer, descriptor: UnsafePointer<ProtobufCMessageDescriptor>) {
        self.message = message
        self.descriptor = descriptor
    }

    @inlinable func field(_ number: Int32) -> UnsafePointer<ProtobufCFieldDescriptor> {
        fieldDescriptor(number, in: descriptor)
    }

    @inlinable func load<T>(_ number: Int32, as type: T.Type) -> T {
        message.load(fromByteOffset: Int(field(number).pointee.offset), as: T.self)
    }

    /// Whether a field with presence (oneof member, proto3 `optional`, proto2 optional, message) is set.
    @inlinable public func has(_ number: Int32) -> Bool {
        let field = field(number).pointee
        if field.isOneofMember {
            return message.load(fromByteOffset: Int(field.quantifier_offset), as: UInt32.self) == UInt32(bitPattern: number)
        }
        switch field.type {
        case PROTOBUF_C_TYPE_MESSAGE:
            return message.load(fromByteOffset: Int(field.offset), as: UnsafeRawPointer?.self) != nil
        case PROTOBUF_C_TYPE_STRING:
            guard let value = message.load(fromByteOffset: Int(field.offset), as: UnsafeRawPointer?.self) else { return false }
            // proto2 optional strings with a default point at the default when absent.
            return field.label != PROTOBUF_C_LABEL_OPTIONAL || value != field.default_value
        default:
            if field.label == PROTOBUF_C_LABEL_OPTIONAL, field.quantifier_offset != 0 {
                return message.load(fromByteOffset: Int(field.quantifier_offset), as: Int32.self) != 0
            }
            return true
        }
    }

    /// The field number of the set member of a oneof, given any member's number; 0 when none is set.
    @inlinable public func oneofCase(_ anyMember: Int32) -> Int32 {
        let field = field(anyMember).pointee
        return Int32(bitPattern: message.load(fromByteOffset: Int(field.quantifier_offset), as: UInt32.self))
    }

    @inlinable public func int32(_ number: Int32) -> Int32 { load(number, as: Int32.self) }
    @inlinable public func int64(_ number: Int32) -> Int64 { load(number, as: Int64.self) }
    @inlinable public func uint32(_ number: Int32) -> UInt32 { load(number, as: UInt32.self) }
    @inlinable public func uint64(_ number: Int32) -> UInt64 { load(number, as: UInt64.self) }
    @inlinable public func float(_ number: Int32) -> Float { load(number, as: Float.self) }
    @inlinable public func double(_ number: Int32) -> Double { load(number, as: Double.self) }
    @inlinable public func bool(_ number: Int32) -> Bool { load(number, as: Int32.self) != 0 }
    @inlinable public func enumValue<E: ProtoEnum>(_ number: Int32, as type: E.Type = E.self) -> E { E(rawValue: load(number, as: Int32.self)) }

    @inlinable public func string(_ number: Int32) -> String {
        guard let value = load(number, as: UnsafePointer<CChar>?.self) else { return "" }
        return String(cString: value)
    }

    @inlinable public func bytes(_ number: Int32) -> [UInt8] {
        Self.copy(load(number, as: ProtobufCBinaryData.self))
    }

    @inlinable public func message<M: CBridgedMessage>(_ number: Int32, as type: M.Type = M.self) -> M? {
        let field = field(number)
        guard let value = message.load(fromByteOffset: Int(field.pointee.offset), as: UnsafeRawPointer?.self) else { return nil }
        return M(reading: CMessageReader(message: value, descriptor: field.pointee.messageDescriptor))
    }

    // MARK: repeated

    @inlinable func repeated<T, R>(_ number: Int32, _ element: T.Type, _ transform: (T) -> R) -> [R] {
        let field = field(number).pointee
        let count = message.load(fromByteOffset: Int(field.quantifier_offset), as: Int.self)
        guard count > 0, let values = message.load(fromByteOffset: Int(field.offset), as: UnsafePointer<T>?.self) else { return [] }
        return UnsafeBufferPointer(start: values, count: count).map(transform)
    }

    @inlinable public func repeatedInt32(_ number: Int32) -> [Int32] { repeated(number, Int32.self) { $0 } }
    @inlinable public func repeatedInt64(_ number: Int32) -> [Int64] { repeated(number, Int64.self) { $0 } }
    @inlinable public func repeatedUInt32(_ number: Int32) -> [UInt32] { repeated(number, UInt32.self) { $0 } }
    @inlinable public func repeatedUInt64(_ number: Int32) -> [UInt64] { repeated(number, UInt64.self) { $0 } }
    @inlinable public func repeatedFloat(_ number: Int32) -> [Float] { repeated(number, Float.self) { $0 } }
    @inlinable public func repeatedDouble(_ number: Int32) -> [Double] { repeated(number, Double.self) { $0 } }
    @inlinable public func repeatedBool(_ number: Int32) -> [Bool] { repeated(number, Int32.self) { $0 != 0 } }
    @inlinable public func repeatedEnum<E: ProtoEnum>(_ number: Int32, as type: E.Type = E.self) -> [E] { repeated(number, Int32.self) { E(rawValue: $0) } }
    @inlinable public func repeatedString(_ number: Int32) -> [String] {
        repeated(number, UnsafePointer<CChar>?.self) { $0.map { String(cString: $0) } ?? "" }
    }
    @inlinable public func repeatedBytes(_ number: Int32) -> [[UInt8]] { repeated(number, ProtobufCBinaryData.self, Self.copy) }
    @inlinable public func repeatedMessage<M: CBridgedMessage>(_ number: Int32, as type: M.Type = M.self) -> [M] {
        let sub = field(number).pointee.messageDescriptor
        return repeated(number, UnsafeRawPointer?.self) { value in
            value.map { M(reading: CMessageReader(message: $0, descriptor: sub)) } ?? M()
        }
    }

    /// A map field: protobuf-c stores it as repeated entry messages (key = 1, value = 2); later entries win.
    @inlinable public func map<K: Hashable, V>(_ number: Int32, _ entry: (CMessageReader) -> (K, V)) -> [K: V] {
        let sub = field(number).pointee.messageDescriptor
        let pairs = repeated(number, UnsafeRawPointer?.self) { value in
            value.map { entry(CMessageReader(message: $0, descriptor: sub)) }
        }
        var result: [K: V] = [:]
        result.reserveCapacity(pairs.count)
        for case let (key, value)? in pairs { result[key] = value }
        return result
    }

    /// Fields protobuf-c did not recognise while unpacking.
    public var unknownFields: UnknownFields {
        let base = message.assumingMemoryBound(to: ProtobufCMessage.self).pointee
        guard base.n_unknown_fields > 0, let list = base.unknown_fields else { return UnknownFields() }
        return UnknownFields(fields: UnsafeBufferPointer(start: list, count: Int(base.n_unknown_fields)).map { field in
            UnknownFields.Field(
                number: field.tag,
                wireType: UInt8(truncatingIfNeeded: field.wire_type.rawValue),
                data: field.data.map { [UInt8](UnsafeBufferPointer(start: $0, count: field.len)) } ?? []
            )
        })
    }

    @inlinable static func copy(_ data: ProtobufCBinaryData) -> [UInt8] {
        guard data.len > 0, let bytes = data.data else { return [] }
        return [UInt8](UnsafeBufferPointer(start: bytes, count: data.len))
    }
}

// MARK: - Writing

/// Write access to a C message being built for packing, field by field number.
///
/// Setting a oneof member or an optional field also records its presence. Memory for strings,
/// arrays and sub-messages comes from the arena and lives until the pack is done.
public struct CMessageWriter {
    @usableFromInline let message: UnsafeMutableRawPointer
    @usableFromInline let descriptor: UnsafePointer<ProtobufCMessageDescriptor>
    @usableFromInline let arena: ProtoArena

    @usableFromInline init(message: UnsafeMutableRawPointer, descriptor: UnsafePointer<ProtobufCMessageDescriptor>, arena: ProtoArena) {
        self.message = message
        self.descriptor = descriptor
        self.arena = arena
    }

    @inlinable func field(_ number: Int32) -> UnsafePointer<ProtobufCFieldDescriptor> {
        fieldDescriptor(number, in: descriptor)
    }

    @inlinable func store<T>(_ number: Int32, _ value: T) {
        let field = field(number).pointee
        message.storeBytes(of: value, toByteOffset: Int(field.offset), as: T.self)
        if field.isOneofMember {
            message.storeBytes(of: UInt32(bitPattern: number), toByteOffset: Int(field.quantifier_offset), as: UInt32.self)
        } else if field.label == PROTOBUF_C_LABEL_OPTIONAL, field.quantifier_offset != 0 {
            message.storeBytes(of: Int32(1), toByteOffset: Int(field.quantifier_offset), as: Int32.self)
        }
    }

    @inlinable public func setInt32(_ number: Int32, _ value: Int32) { store(number, value) }
    @inlinable public func setInt64(_ number: Int32, _ value: Int64) { store(number, value) }
    @inlinable public func setUInt32(_ number: Int32, _ value: UInt32) { store(number, value) }
    @inlinable public func setUInt64(_ number: Int32, _ value: UInt64) { store(number, value) }
    @inlinable public func setFloat(_ number: Int32, _ value: Float) { store(number, value) }
    @inlinable public func setDouble(_ number: Int32, _ value: Double) { store(number, value) }
    @inlinable public func setBool(_ number: Int32, _ value: Bool) { store(number, Int32(value ? 1 : 0)) }
    @inlinable public func setEnum<E: ProtoEnum>(_ number: Int32, _ value: E) { store(number, value.rawValue) }
    @inlinable public func setString(_ number: Int32, _ value: String) { store(number, UnsafePointer(arena.cString(value))) }
    @inlinable public func setBytes(_ number: Int32, _ value: [UInt8]) { store(number, arena.bytes(value)) }

    @inlinable public func setMessage<M: CBridgedMessage>(_ number: Int32, _ value: M) {
        store(number, UnsafeRawPointer(build(value, field: field(number))))
    }

    @inlinable func build<M: CBridgedMessage>(_ value: M, field: UnsafePointer<ProtobufCFieldDescriptor>) -> UnsafeMutableRawPointer {
        let sub = field.pointee.messageDescriptor
        let memory = arena.message(of: sub)
        value.write(to: CMessageWriter(message: memory, descriptor: sub, arena: arena))
        return memory
    }

    // MARK: repeated

    @inlinable func storeRepeated<T>(_ number: Int32, count: Int, _ element: (Int) -> T) {
        guard count > 0 else { return }
        let field = field(number).pointee
        let values = arena.allocate(byteCount: MemoryLayout<T>.stride * count).bindMemory(to: T.self, capacity: count)
        for index in 0..<count { (values + index).initialize(to: element(index)) }
        message.storeBytes(of: count, toByteOffset: Int(field.quantifier_offset), as: Int.self)
        message.storeBytes(of: UnsafeMutablePointer(values), toByteOffset: Int(field.offset), as: UnsafeMutablePointer<T>.self)
    }

    @inlinable public func setRepeatedInt32(_ number: Int32, _ values: [Int32]) { storeRepeated(number, count: values.count) { values[$0] } }
    @inlinable public func setRepeatedInt64(_ number: Int32, _ values: [Int64]) { storeRepeated(number, count: values.count) { values[$0] } }
    @inlinable public func setRepeatedUInt32(_ number: Int32, _ values: [UInt32]) { storeRepeated(number, count: values.count) { values[$0] } }
    @inlinable public func setRepeatedUInt64(_ number: Int32, _ values: [UInt64]) { storeRepeated(number, count: values.count) { values[$0] } }
    @inlinable public func setRepeatedFloat(_ number: Int32, _ values: [Float]) { storeRepeated(number, count: values.count) { values[$0] } }
    @inlinable public func setRepeatedDouble(_ number: Int32, _ values: [Double]) { storeRepeated(number, count: values.count) { values[$0] } }
    @inlinable public func setRepeatedBool(_ number: Int32, _ values: [Bool]) { storeRepeated(number, count: values.count) { Int32(values[$0] ? 1 : 0) } }
    @inlinable public func setRepeatedEnum<E: ProtoEnum>(_ number: Int32, _ values: [E]) { storeRepeated(number, count: values.count) { values[$0].rawValue } }
    @inlinable public func setRepeatedString(_ number: Int32, _ values: [String]) {
        storeRepeated(number, count: values.count) { UnsafePointer(arena.cString(values[$0])) }
    }
    @inlinable public func setRepeatedBytes(_ number: Int32, _ values: [[UInt8]]) { storeRepeated(number, count: values.count) { arena.bytes(values[$0]) } }
    @inlinable public func setRepeatedMessage<M: CBridgedMessage>(_ number: Int32, _ values: [M]) {
        let field = field(number)
        storeRepeated(number, count: values.count) { UnsafeRawPointer(build(values[$0], field: field)) }
    }

    /// A map field as repeated entry messages, in key order so that encodings are deterministic.
    @inlinable public func setMap<K: Comparable, V>(_ number: Int32, _ values: [K: V], _ entry: (CMessageWriter, K, V) -> Void) {
        writeMap(number, values.sorted { $0.key < $1.key }, entry)
    }

    /// A map field keyed by `Bool` (not `Comparable`): `false` first.
    @inlinable public func setMap<V>(_ number: Int32, _ values: [Bool: V], _ entry: (CMessageWriter, Bool, V) -> Void) {
        writeMap(number, values.sorted { !$0.key && $1.key }, entry)
    }

    @inlinable func writeMap<K, V>(_ number: Int32, _ pairs: [(key: K, value: V)], _ entry: (CMessageWriter, K, V) -> Void) {
        let sub = field(number).pointee.messageDescriptor
        storeRepeated(number, count: pairs.count) { index -> UnsafeRawPointer in
            let memory = arena.message(of: sub)
            entry(CMessageWriter(message: memory, descriptor: sub, arena: arena), pairs[index].key, pairs[index].value)
            return UnsafeRawPointer(memory)
        }
    }

    /// Hands unknown fields back to protobuf-c, which re-emits them after the known ones.
    public func setUnknownFields(_ unknown: UnknownFields) {
        guard !unknown.isEmpty else { return }
        let count = unknown.fields.count
        let list = arena.allocate(byteCount: MemoryLayout<ProtobufCMessageUnknownField>.stride * count)
            .bindMemory(to: ProtobufCMessageUnknownField.self, capacity: count)
        for (index, field) in unknown.fields.enumerated() {
            let data = arena.bytes(field.data)
            (list + index).initialize(to: ProtobufCMessageUnknownField(
                tag: field.number,
                wire_type: ProtobufCWireType(rawValue: UInt32(field.wireType)),
                len: data.len,
                data: data.data
            ))
        }
        let base = message.assumingMemoryBound(to: ProtobufCMessage.self)
        base.pointee.n_unknown_fields = UInt32(count)
        base.pointee.unknown_fields = list
    }
}
