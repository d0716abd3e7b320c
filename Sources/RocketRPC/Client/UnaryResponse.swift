/// The result of a unary or client-streaming call.
public struct UnaryResponse<Message: Sendable>: Sendable {
    /// The single response message.
    public var message: Message
    /// Response headers' custom metadata.
    public var initialMetadata: Metadata
    /// Trailers' custom metadata.
    public var trailingMetadata: Metadata

    public init(message: Message, initialMetadata: Metadata, trailingMetadata: Metadata) {
        self.message = message
        self.initialMetadata = initialMetadata
        self.trailingMetadata = trailingMetadata
    }
}
