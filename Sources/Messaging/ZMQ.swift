// The single door to libzmq: a context, sockets with a typed option API and multipart send/receive,
// and errors that carry the errno text and what was being done. Nothing outside Messaging imports
// CZeroMQ. Sockets are not thread-safe (a ZeroMQ rule): each belongs to the one thread that uses it.
import CZeroMQ
import Foundation

public struct ZMQError: Error, CustomStringConvertible, Equatable {
    public let code: Int32
    public let operation: String

    init(_ operation: String, code: Int32 = zmq_errno()) {
        self.code = code
        self.operation = operation
    }

    public var description: String { "\(operation): \(String(cString: zmq_strerror(code))) (errno \(code))" }

    /// The call timed out or would block (EAGAIN).
    public var isTimeout: Bool { code == EAGAIN }
    /// The context was terminated (shutdown).
    public var isTerminated: Bool { code == ETERM }
    /// ROUTER_MANDATORY: the peer is gone.
    public var isUnreachable: Bool { code == EHOSTUNREACH }
}

public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private let lock = NSLock()
    private var terminating = false

    public init() throws {
        guard let h = zmq_ctx_new() else { throw ZMQError("zmq_ctx_new") }
        handle = h
    }

    /// Ends the context: waits until every socket is closed and what their linger keeps is sent, for
    /// at most `timeout` (a socket still open elsewhere would block forever). True when it ended.
    @discardableResult
    public func terminate(timeout: TimeInterval) -> Bool {
        lock.lock()
        let first = !terminating
        terminating = true
        lock.unlock()
        guard first else { return true }
        let done = DispatchSemaphore(value: 0)
        let t = Thread { [self] in
            zmq_ctx_term(handle); done.signal()
        }
        t.name = "lgap-zmq-term"
        t.start()
        return done.wait(timeout: .now() + timeout) == .success
    }

    deinit {
        lock.lock()
        let done = terminating
        lock.unlock()
        if !done { zmq_ctx_term(handle) }
    }
}

public enum SocketType: String, Sendable, CaseIterable {
    case pull = "PULL", push = "PUSH", router = "ROUTER", dealer = "DEALER", req = "REQ", rep = "REP"
    case pub = "PUB", sub = "SUB", xpub = "XPUB", xsub = "XSUB", pair = "PAIR"

    var raw: Int32 {
        switch self {
        case .pull: return ZMQ_PULL
        case .push: return ZMQ_PUSH
        case .router: return ZMQ_ROUTER
        case .dealer: return ZMQ_DEALER
        case .req: return ZMQ_REQ
        case .rep: return ZMQ_REP
        case .pub: return ZMQ_PUB
        case .sub: return ZMQ_SUB
        case .xpub: return ZMQ_XPUB
        case .xsub: return ZMQ_XSUB
        case .pair: return ZMQ_PAIR
        }
    }
}

/// One received multipart message, with what the peer told the handshake about itself.
public struct ZMQMessage: Sendable {
    /// At most `maxFrames` frames; the rest were read and counted in `dropped`.
    public var frames: [[UInt8]]
    public var dropped: Int
    /// The peer's socket type ("DEALER", "REQ", …) from the ZMTP handshake, when known.
    public var peerSocketType: SocketType?
    /// The peer's address (IP for TCP), when known.
    public var peerAddress: String?
}

public final class ZMQSocket: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    public let type: SocketType
    private(set) var closed = false
    /// Held so the context outlives its sockets: zmq_ctx_term blocks while any socket is open.
    private let context: ZMQContext

    public init(_ context: ZMQContext, _ type: SocketType) throws {
        guard let h = zmq_socket(context.handle, type.raw) else { throw ZMQError("zmq_socket(\(type))") }
        handle = h
        self.type = type
        self.context = context
        try setLinger(milliseconds: 0)
    }

    deinit { close() }

    public func close() {
        if !closed { zmq_close(handle); closed = true }
    }

    // MARK: Options

    private func set(_ option: Int32, _ value: Int32, _ name: String) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else { throw ZMQError("set \(name)") }
    }

    private func set(_ option: Int32, _ value: Int64, _ name: String) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) == 0 else { throw ZMQError("set \(name)") }
    }

    private func set(_ option: Int32, bytes: [UInt8], _ name: String) throws {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, bytes.count) }
        guard rc == 0 else { throw ZMQError("set \(name)") }
    }

    /// How long unsent messages are kept at close (0: dropped at once).
    public func setLinger(milliseconds: Int32) throws { try set(ZMQ_LINGER, milliseconds, "linger") }
    /// Messages queued per peer on receive before libzmq stops reading that peer.
    public func setReceiveHighWaterMark(_ messages: Int32) throws { try set(ZMQ_RCVHWM, messages, "receive high-water mark") }
    /// Messages queued per peer on send before sends block (or, on PUB, drop).
    public func setSendHighWaterMark(_ messages: Int32) throws { try set(ZMQ_SNDHWM, messages, "send high-water mark") }
    /// The kernel receive buffer (SO_RCVBUF) of each connection.
    public func setReceiveBuffer(bytes: Int32) throws { try set(ZMQ_RCVBUF, bytes, "receive buffer") }
    /// The kernel send buffer (SO_SNDBUF) of each connection.
    public func setSendBuffer(bytes: Int32) throws { try set(ZMQ_SNDBUF, bytes, "send buffer") }
    /// libzmq drops a peer that announces a larger frame, before buffering it.
    public func setMaxMessageSize(_ bytes: Int64) throws { try set(ZMQ_MAXMSGSIZE, bytes, "max message size") }
    /// ROUTER: sends to an unknown or full peer fail (EHOSTUNREACH / EAGAIN) instead of dropping silently.
    public func setRouterMandatory(_ on: Bool) throws { try set(ZMQ_ROUTER_MANDATORY, Int32(on ? 1 : 0), "router mandatory") }
    /// XPUB: a send that some subscriber has no room for fails with EAGAIN instead of dropping for it.
    public func setXPubNoDrop(_ on: Bool) throws { try set(ZMQ_XPUB_NODROP, Int32(on ? 1 : 0), "xpub nodrop") }
    /// SUB: receive messages whose first frame starts with `topic`.
    public func subscribe(topic: String) throws { try set(ZMQ_SUBSCRIBE, bytes: Array(topic.utf8), "subscribe") }
    /// The domain ZAP requests from this socket carry (tells the authenticator which socket asks).
    public func setZAPDomain(_ domain: String) throws { try set(ZMQ_ZAP_DOMAIN, bytes: Array(domain.utf8), "zap domain") }
    /// Connecting sockets: queue messages only for completed connections.
    public func setImmediate(_ on: Bool) throws { try set(ZMQ_IMMEDIATE, Int32(on ? 1 : 0), "immediate") }
    public func setReconnectInterval(milliseconds: Int32) throws { try set(ZMQ_RECONNECT_IVL, milliseconds, "reconnect interval") }
    public func setRoutingID(_ id: [UInt8]) throws { try set(ZMQ_ROUTING_ID, bytes: id, "routing id") }
    /// Makes this socket a CURVE server with `secretKey` (Z85).
    public func setCurveServer(secretKey: String) throws {
        try set(ZMQ_CURVE_SERVER, Int32(1), "curve server")
        try set(ZMQ_CURVE_SECRETKEY, bytes: Array(secretKey.utf8), "curve secret key")
    }
    /// Makes this socket a CURVE client of the server with `serverKey`, using `keys`.
    public func setCurveClient(serverKey: String, keys: CurveKeyPair) throws {
        try set(ZMQ_CURVE_SERVERKEY, bytes: Array(serverKey.utf8), "curve server key")
        try set(ZMQ_CURVE_PUBLICKEY, bytes: Array(keys.publicKey.utf8), "curve public key")
        try set(ZMQ_CURVE_SECRETKEY, bytes: Array(keys.secretKey.utf8), "curve secret key")
    }

    // MARK: Endpoints

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError("connect \(endpoint)") }
    }

    public func disconnect(_ endpoint: String) throws {
        guard zmq_disconnect(handle, endpoint) == 0 else { throw ZMQError("disconnect \(endpoint)") }
    }

    /// The endpoint actually bound (resolves "tcp://127.0.0.1:*" to its port).
    public var lastEndpoint: String {
        var buf = [CChar](repeating: 0, count: 256)
        var size = buf.count
        _ = zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buf, &size)
        return String(cString: buf)
    }

    /// Reports connection events (accepted, disconnected, closed, handshake failures) as messages on
    /// the returned monitor, which the caller reads on this socket's thread.
    public func monitor(_ context: ZMQContext) throws -> SocketMonitor {
        let endpoint = "inproc://lgap-monitor-\(UInt64.random(in: 0...UInt64.max))"
        let events =
            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
            | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
        guard zmq_socket_monitor(handle, endpoint, events) == 0 else { throw ZMQError("monitor") }
        let pair = try ZMQSocket(context, .pair)
        try pair.connect(endpoint)
        return SocketMonitor(socket: pair)
    }

    // MARK: Sending

    /// Sends all frames as one multipart message. With `timeoutMs` (≥ 0) a full queue gives up
    /// after that long (throws isTimeout); nil blocks.
    public func send(_ frames: [[UInt8]], timeoutMs: Int32? = nil) throws {
        try set(ZMQ_SNDTIMEO, timeoutMs ?? -1, "send timeout")
        try sendFrames(frames, flags: 0)
    }

    /// Sends without waiting: false when the message cannot be queued now (a full peer, or no peer
    /// that could take it); nothing is sent then. Throws for other errors (an unreachable ROUTER
    /// peer: isUnreachable).
    public func trySend(_ frames: [[UInt8]]) throws -> Bool {
        do {
            try sendFrames(frames, flags: ZMQ_DONTWAIT)
            return true
        } catch let e as ZMQError where e.isTimeout {
            return false
        }
    }

    private func sendFrames(_ frames: [[UInt8]], flags: Int32) throws {
        for (i, frame) in frames.enumerated() {
            let more = i < frames.count - 1 ? ZMQ_SNDMORE : 0
            let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, frame.count, flags | more) }
            // libzmq accepts a multipart message atomically: only the first frame can fail with EAGAIN.
            guard rc >= 0 else { throw ZMQError("send") }
        }
    }

    // MARK: Receiving

    /// One multipart message: at most `maxFrames` frames are kept (the rest are read and counted in
    /// `dropped`), so an oversized message cannot grow memory. nil on timeout (0: do not wait).
    public func receive(timeoutMs: Int32, maxFrames: Int = 16) throws -> ZMQMessage? {
        try set(ZMQ_RCVTIMEO, timeoutMs, "receive timeout")
        var message = ZMQMessage(frames: [], dropped: 0)
        var first = true
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            let rc = zmq_msg_recv(&msg, handle, 0)
            if rc < 0 {
                let e = ZMQError("receive")
                if e.isTimeout && first { return nil }
                throw e
            }
            if first {
                first = false
                message.peerSocketType = Self.property(&msg, "Socket-Type").flatMap(SocketType.init(rawValue:))
                message.peerAddress = Self.property(&msg, "Peer-Address")
            }
            if message.frames.count < maxFrames {
                let size = zmq_msg_size(&msg)
                let data = zmq_msg_data(&msg)
                message.frames.append(size > 0 && data != nil ? Array(UnsafeRawBufferPointer(start: data, count: size)) : [])
            } else {
                message.dropped += 1
            }
            if zmq_msg_more(&msg) == 0 { break }
        }
        return message
    }

    private static func property(_ msg: inout zmq_msg_t, _ name: String) -> String? {
        guard let p = zmq_msg_gets(&msg, name) else { return nil }
        return String(cString: p)
    }

    /// Waits until `sockets` have a message to read; which of them do (empty on timeout).
    public static func poll(_ sockets: [ZMQSocket], timeoutMs: Int) throws -> [Bool] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        let rc = zmq_poll(&items, Int32(items.count), timeoutMs)
        if rc < 0 { throw ZMQError("poll") }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}

/// Connection events of one socket (zmq_socket_monitor): read on the socket's own thread.
public final class SocketMonitor: @unchecked Sendable {
    public let socket: ZMQSocket

    public enum Event: Sendable, Equatable {
        /// A peer connected to us; its file descriptor.
        case accepted(fd: Int32)
        /// We connected to a peer.
        case connected(fd: Int32)
        case disconnected(fd: Int32)
        case closed(fd: Int32)
        case handshakeSucceeded
        case handshakeFailed(code: Int32)
        case other(UInt16)
    }

    init(socket: ZMQSocket) { self.socket = socket }

    /// The next event, or nil when none arrives within the timeout.
    public func next(timeoutMs: Int32) throws -> (event: Event, endpoint: String)? {
        guard let m = try socket.receive(timeoutMs: timeoutMs, maxFrames: 2), m.frames.count == 2, m.frames[0].count >= 6 else { return nil }
        let f = m.frames[0]
        let id = UInt16(f[0]) | UInt16(f[1]) << 8
        let value = Int32(bitPattern: UInt32(f[2]) | UInt32(f[3]) << 8 | UInt32(f[4]) << 16 | UInt32(f[5]) << 24)
        let endpoint = String(decoding: m.frames[1], as: UTF8.self)
        let event: Event
        switch Int32(id) {
        case ZMQ_EVENT_ACCEPTED: event = .accepted(fd: value)
        case ZMQ_EVENT_CONNECTED: event = .connected(fd: value)
        case ZMQ_EVENT_DISCONNECTED: event = .disconnected(fd: value)
        case ZMQ_EVENT_CLOSED: event = .closed(fd: value)
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: event = .handshakeSucceeded
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            event = .handshakeFailed(code: value)
        default: event = .other(id)
        }
        return (event, endpoint)
    }

    public func close() { socket.close() }
}

/// Forwards messages both ways between two sockets until the context ends (zmq_proxy): the results
/// proxy's XSUB ↔ XPUB.
public func runProxy(frontend: ZMQSocket, backend: ZMQSocket) throws {
    if zmq_proxy(frontend.handle, backend.handle, nil) != 0 { throw ZMQError("proxy") }
}

/// ZeroMQ's version as "major.minor.patch".
public var zmqVersion: String {
    var a: Int32 = 0, b: Int32 = 0, c: Int32 = 0
    zmq_version(&a, &b, &c)
    return "\(a).\(b).\(c)"
}
