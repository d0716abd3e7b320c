import NIOCore

/// One established HTTP/2 connection of a channel. Sendable handle; the handler stays on its event loop.
final class ClientConnection: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<ClientConnectionHandler>

    init(channel: any Channel, handler: NIOLoopBound<ClientConnectionHandler>) {
        self.channel = channel
        self.handler = handler
    }

    var eventLoop: any EventLoop { channel.eventLoop }
}
