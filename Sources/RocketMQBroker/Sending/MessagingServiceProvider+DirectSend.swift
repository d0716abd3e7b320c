import RocketMQAPI
import RocketMQStore
import RocketRPC

// SendMessage without the generated types: the message goes from the request's bytes into its
// CommitLog record in one encode (no `Apache_Rocketmq_V2_Message`, no properties dictionary,
// no `MessageToAppend`), and the usual answer is written as bytes. The generated
// `sendMessage(request:context:)` stays the reference: any request this path does not take
// on whole — an unusual encoding (see `WireSendMessage`), a message that fails a check, an
// unknown or new topic's edge — goes there before anything is stored, and gets exactly the
// answer it always got.

extension MessagingServiceProvider {
    public func register(into router: inout RPCRouter) {
        registerMethods(into: &router)
        // Immediate: with async flush the usual send is answered inside the read that brought
        // it, with no task (the store's append does not wait); with sync flush, from the group
        // commit's callback (no task either); everything else is deferred to a task.
        router.unary(Apache_Rocketmq_V2_MessagingService.Method.sendMessage, immediate: {
            (request: SendMessageRequestBytes, context: ServerContext) -> ImmediateAnswer<SendMessageResponseBytes> in
            self.answerSend(request, context: context)
        })
    }

    func answerSend(_ request: SendMessageRequestBytes, context: ServerContext) -> ImmediateAnswer<SendMessageResponseBytes> {
        // A master holding its writes at start: the generated way waits for the hold to end.
        guard !broker.isHoldingWrites, let message = request.message, Self.hasClientID(context.requestMetadata),
              let direct = prepare(message, in: request.bytes, peer: context.peer, metadata: context.requestMetadata)
        else {
            return .later { SendMessageResponseBytes(try await self.sendMessage(request: try request.request(), context: context)) }
        }
        let bytes = request.bytes
        do {
            guard let result = try broker.appendWithoutWaiting(direct.encoded) else {
                // Sync flush: answered from the group commit's callback, with no task.
                return .callback { done in self.send(direct, in: bytes) { done(.success($0)) } }
            }
            return .now(answer(.success(result), for: direct, in: bytes))
        } catch {
            return .now(answer(.failure(error), for: direct, in: bytes))
        }
    }

    /// A message that passed every check, encoded, and the id to answer with (the producer's).
    struct DirectSend {
        var encoded: EncodedMessage
        var messageId: Range<Int>
    }

    /// Appends a direct send and passes its answer to `completion`: at once, or (sync flush) from
    /// the store's flusher thread once the group commit covering it returned.
    func send(_ direct: DirectSend, in bytes: [UInt8], completion: @escaping @Sendable (SendMessageResponseBytes) -> Void) {
        broker.append(direct.encoded) { outcome in completion(self.answer(outcome, for: direct, in: bytes)) }
    }

    /// The answer to a direct send: the stored offset and the message id, or the error's status.
    private func answer(_ outcome: Result<AppendResult, BrokerError>, for direct: DirectSend, in bytes: [UInt8]) -> SendMessageResponseBytes {
        switch outcome {
        case .success(let result):
            return bytes.withUnsafeBytes {
                SendMessageResponseBytes.stored(messageId: UnsafeRawBufferPointer(rebasing: $0[direct.messageId]), offset: result.queueOffset)
            }
        case .failure(let error):
            let messageId = bytes.withUnsafeBytes { String(decoding: $0[direct.messageId], as: UTF8.self) }
            return SendMessageResponseBytes(Self.sendResponse([.init(status: error.status, messageId: messageId)]))
        }
    }

    /// Checks `message` as `send(_:peer:)` and `SendValidation` do and encodes its record; nil
    /// sends it the generated way (before anything is stored). Every check comes before the
    /// queue is picked, so a message the generated way then takes picks its queue once; only a
    /// record the store refuses to encode (a property over 64 KiB) picks twice, which moves
    /// the round-robin one step.
    func prepare(_ message: WireSendMessage, in bytes: [UInt8], peer: String, metadata: Metadata) -> DirectSend? {
        bytes.withUnsafeBytes { raw -> DirectSend? in
            func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: raw[range]) }
            // Delay messages go the generated way, which answers with their recall handle.
            if message.messageType == 3 || message.deliveryTimestamp != nil { return nil }
            let group = message.messageGroup.map(slice) ?? UnsafeRawBufferPointer(start: nil, count: 0)
            let type: MessageKind
            switch message.messageType {
            case 0: type = group.isEmpty ? .normal : .fifo
            case 1: type = .normal
            case 2: type = .fifo
            default: return nil
            }
            let topicName = String(decoding: slice(message.topic), as: UTF8.self)
            guard let topic = try? broker.topic(named: topicName), topic.isWritable,
                  topic.messageTypes.contains(type.name)
            else { return nil }
            // SendValidation, on bytes known to be ASCII without NUL: anything it would refuse
            // (or that needs a closer look) goes the generated way, which says why.
            if slice(message.messageId).isBlankASCII { return nil }
            if type == .fifo ? group.isBlankASCII : !group.isEmpty { return nil }
            if group.count > 64 || group.hasControlASCII { return nil }
            let body = slice(message.body)
            guard !body.isEmpty, body.count <= broker.maxBodySize else { return nil }
            if let tag = message.tag.map(slice) {
                guard !tag.isBlankASCII, !tag.contains(UInt8(ascii: "|")), !tag.hasControlASCII else { return nil }
            }
            for key in message.keys.map(slice) where key.isBlankASCII || key.hasControlASCII {
                return nil
            }
            // Duplicates are looked for pair by pair: fine for the few properties producers
            // set, quadratic for thousands of tiny ones, which the generated way handles.
            guard message.userProperties.count <= 64 else { return nil }
            var propertyBytes = 0
            for (index, (keyRange, valueRange)) in message.userProperties.enumerated() {
                let key = slice(keyRange)
                guard !key.isEmpty, !SendValidation.isReservedPropertyKey(ascii: key), !key.hasControlASCII, !slice(valueRange).hasControlASCII else { return nil }
                // The generated map keeps the last of duplicate keys: leave those to it.
                for earlier in message.userProperties[..<index] where slice(earlier.key).equals(key) { return nil }
                propertyBytes += keyRange.count + valueRange.count
            }
            if propertyBytes > SendValidation.maxUserPropertyBytes { return nil }

            let messageGroup = message.messageGroup.map { String(decoding: slice($0), as: UTF8.self) }
            let choosesQueues = Self.choosesQueues(metadata)
            // A chosen queue that takes no writes: the generated way refuses it, saying why.
            if broker.chosenQueueProblem(topic, requested: message.queueId, messageGroup: messageGroup, clientChoosesQueues: choosesQueues) != nil {
                return nil
            }
            let queueId = broker.queue(
                for: topic, requested: message.queueId, messageGroup: messageGroup,
                clientChoosesQueues: message.queueId == 0 && choosesQueues)
            do {
                let encoded = try encode(message, raw, topic: topicName, queueId: queueId, type: type, peer: peer)
                return DirectSend(encoded: encoded, messageId: message.messageId)
            } catch {
                // Too large for a record: rare enough to let the generated way say so.
                return nil
            }
        }
    }

    /// The record `toAppend(queueId:bornHost:type:)` would give the store, from the bytes.
    private func encode(
        _ message: WireSendMessage, _ raw: UnsafeRawBufferPointer, topic: String, queueId: Int32, type: MessageKind, peer: String
    ) throws(StoreError) -> EncodedMessage {
        func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: raw[range]) }
        let capacity = message.userProperties.count + 8
        return try withUnsafeTemporaryAllocation(of: MessagePropertyBytes.self, capacity: capacity) { (properties) throws(StoreError) in
            var count = 0
            func add(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
                properties.initializeElement(at: count, to: MessagePropertyBytes(key: key, value: value))
                count += 1
            }
            for (key, value) in message.userProperties { add(slice(key), slice(value)) }
            if let tag = message.tag, !tag.isEmpty { add(PropertyName.tags, slice(tag)) }
            if !message.messageId.isEmpty { add(PropertyName.uniqueKey, slice(message.messageId)) }
            add(PropertyName.messageType, type.nameBytes)
            if let group = message.messageGroup, !group.isEmpty { add(PropertyName.messageGroup, slice(group)) }
            if message.bodyEncoding == 2 { add(PropertyName.bodyEncoding, PropertyName.gzip) }
            if let trace = message.traceContext, !trace.isEmpty { add(PropertyName.traceContext, slice(trace)) }
            defer { properties.baseAddress?.deinitialize(count: count) }
            var peer = peer
            // KEYS is the keys joined by spaces, built on the stack.
            let keysLength = message.keys.isEmpty ? 0 : message.keys.reduce(message.keys.count - 1) { $0 + $1.count }
            return try withUnsafeTemporaryAllocation(byteCount: max(1, keysLength), alignment: 1) { (scratch) throws(StoreError) in
                if !message.keys.isEmpty {
                    var at = 0
                    for (index, key) in message.keys.enumerated() {
                        if index > 0 { scratch[at] = UInt8(ascii: " "); at += 1 }
                        UnsafeMutableRawBufferPointer(rebasing: scratch[at..<(at + key.count)]).copyMemory(from: slice(key))
                        at += key.count
                    }
                    add(PropertyName.keys, UnsafeRawBufferPointer(rebasing: scratch[0..<keysLength]))
                }
                let props = UnsafeMutableBufferPointer(rebasing: properties[0..<count])
                if message.bornHost.isEmpty {
                    return try peer.withUTF8 { host in
                        Result { () throws(StoreError) in
                            try broker.store.encode(
                                topic: topic, queueId: queueId, bornTimestamp: message.bornTimestamp ?? 0,
                                bornHost: UnsafeRawBufferPointer(host), properties: props, body: slice(message.body))
                        }
                    }.get()
                }
                return try broker.store.encode(
                    topic: topic, queueId: queueId, bornTimestamp: message.bornTimestamp ?? 0,
                    bornHost: slice(message.bornHost), properties: props, body: slice(message.body))
            }
        }
    }

    /// The two message types this path sends.
    enum MessageKind {
        case normal, fifo

        /// The protocol name, as topics list accepted types and records keep `__MESSAGE_TYPE`.
        private var staticName: StaticString {
            switch self {
            case .normal: "NORMAL"
            case .fifo: "FIFO"
            }
        }

        /// As a literal, not `staticName.description`, which builds the string on every call.
        var name: String {
            switch self {
            case .normal: "NORMAL"
            case .fifo: "FIFO"
            }
        }
        var nameBytes: UnsafeRawBufferPointer { PropertyName.bytes(staticName) }
    }
}

/// Property keys and fixed values as UTF-8 bytes: the `StaticString` spellings of
/// `MessageProperty` and `StoredProperty` (they live as long as the program).
private enum PropertyName {
    static var tags: UnsafeRawBufferPointer { bytes(MessageProperty.tagsKey) }
    static var keys: UnsafeRawBufferPointer { bytes(MessageProperty.keysKey) }
    static var uniqueKey: UnsafeRawBufferPointer { bytes(MessageProperty.uniqueKeyKey) }
    static var messageType: UnsafeRawBufferPointer { bytes(StoredProperty.messageTypeKey) }
    static var messageGroup: UnsafeRawBufferPointer { bytes(StoredProperty.messageGroupKey) }
    static var bodyEncoding: UnsafeRawBufferPointer { bytes(StoredProperty.bodyEncodingKey) }
    static var traceContext: UnsafeRawBufferPointer { bytes(StoredProperty.traceContextKey) }
    static var gzip: UnsafeRawBufferPointer { bytes(StoredProperty.gzipValue) }

    static func bytes(_ s: StaticString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)
    }
}

extension UnsafeRawBufferPointer {
    /// `String.isBlank` for ASCII bytes: empty or only whitespace.
    var isBlankASCII: Bool { allSatisfy(\.isASCIIWhitespace) }
    /// `SendValidation.hasControlCharacter` for ASCII bytes.
    var hasControlASCII: Bool { contains { $0 < 0x20 || $0 == 0x7F } }
}
