import NIOCore
import NIOSSL

/// Decides per connection between TLS and cleartext h2c by the first byte (`0x16` starts a TLS
/// handshake record), inserts `NIOSSLServerHandler` when needed, then removes itself.
///
/// Confined to its channel's event loop.
final class TLSSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let sslContext: NIOSSLContext

    init(sslContext: NIOSSLContext) {
        self.sslContext = sslContext
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == 0x16 {
            do {
                try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext), position: .after(self))
            } catch {
                context.close(promise: nil)
                return
            }
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
