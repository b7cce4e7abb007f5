// The HTTP side of operations, on SwiftNIO's HTTP/1 server (not a parser of our own): GET /metrics
// (Prometheus text format from DaemonMetrics.registry), /livez (200 while the daemon's threads make
// progress or have nothing to do; 503 when they are stuck) and /readyz (200 when the pack is loaded,
// the store writable, ingest running and not draining; 503 with the reasons otherwise).
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

public final class MetricsServer: Service, @unchecked Sendable {
    public let name = "metrics"
    let endpoint: HostPort
    let state: DaemonState
    /// Jobs in flight (a stuck daemon has some and makes no progress).
    let inFlight: @Sendable () -> Int
    /// How old the last progress may be while jobs are in flight before /livez says 503.
    let liveWindow: TimeInterval
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let lock = NSLock()
    private var channel: Channel?
    private var stopping = false
    /// The address bound (port 0 in the configuration picks a free one).
    public private(set) var boundPort: Int?

    public init(endpoint: HostPort, state: DaemonState, liveWindow: TimeInterval, inFlight: @escaping @Sendable () -> Int) {
        self.endpoint = endpoint
        self.state = state
        self.liveWindow = liveWindow
        self.inFlight = inFlight
    }

    /// Binds now (so a bad endpoint fails the start, not later).
    public func bind() throws {
        let route: @Sendable (String) -> Response = { [state, inFlight, liveWindow] path in
            Self.respond(path: path, state: state, inFlight: inFlight(), liveWindow: liveWindow)
        }
        let ch = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(route: route))
                }
            }
            .bind(host: endpoint.host, port: endpoint.port).wait()
        lock.lock()
        channel = ch
        boundPort = ch.localAddress?.port
        lock.unlock()
    }

    public func run() throws {
        if lockedChannel == nil { try bind() }
        try lockedChannel?.closeFuture.wait()
        try group.syncShutdownGracefully()
    }

    public func stop() {
        lock.lock()
        let ch = channel
        stopping = true
        lock.unlock()
        ch?.close(promise: nil)
    }

    public var minimumStopTime: TimeInterval? { nil }

    private var lockedChannel: Channel? { lock.lock(); defer { lock.unlock() }; return channel }

    struct Response: Sendable {
        var status: HTTPResponseStatus
        var contentType = "text/plain; charset=utf-8"
        var body: String
    }

    static func respond(path: String, state: DaemonState, inFlight: Int, liveWindow: TimeInterval) -> Response {
        switch path.split(separator: "?").first.map(String.init) ?? path {
        case "/metrics":
            return Response(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: DaemonMetrics.registry.emitToString())
        case "/livez":
            let age = Date().timeIntervalSince(state.heartbeat)
            return age < liveWindow || inFlight == 0
                ? Response(status: .ok, body: "live\n")
                : Response(status: .serviceUnavailable, body: String(format: "stuck: no progress for %.0f s with %d jobs in flight\n", age, inFlight))
        case "/readyz":
            return state.ready
                ? Response(status: .ok, body: "ready\n")
                : Response(status: .serviceUnavailable, body: "not ready: " + state.notReadyReasons.joined(separator: "; ") + "\n")
        default:
            return Response(status: .notFound, body: "GET /metrics, /livez or /readyz\n")
        }
    }
}

/// One request at a time per connection: GET only, the body of the route's response.
private final class HTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let route: @Sendable (String) -> MetricsServer.Response
    private var request: HTTPRequestHead?

    init(route: @escaping @Sendable (String) -> MetricsServer.Response) { self.route = route }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request else { return }
            request = nil
            let r =
                head.method == .GET || head.method == .HEAD
                ? route(head.uri) : MetricsServer.Response(status: .methodNotAllowed, body: "GET only\n")
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: r.contentType)
            headers.add(name: "Content-Length", value: "\(r.body.utf8.count)")
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: r.status, headers: headers))), promise: nil)
            if head.method != .HEAD {
                var buffer = context.channel.allocator.buffer(capacity: r.body.utf8.count)
                buffer.writeString(r.body)
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            }
            let keepAlive = head.isKeepAlive
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { bound.value.close(promise: nil) }
            }
        }
    }
}
