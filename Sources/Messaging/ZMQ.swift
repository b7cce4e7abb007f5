// The single door to libzmq: a context, sockets with multipart send/receive, and errors that carry
// the errno text and what was being done. Sockets are not thread-safe (a ZeroMQ rule): each belongs
// to the one thread that uses it.
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
}

public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() throws {
        guard let h = zmq_ctx_new() else { throw ZMQError("zmq_ctx_new") }
        handle = h
    }

    /// Blocks until every socket is closed (sockets use linger 0 so this is quick).
    public func terminate() { zmq_ctx_term(handle) }

    deinit { zmq_ctx_term(handle) }
}

public enum SocketType: Int32, Sendable {
    case pull, push, router, dealer, req, rep, pub, sub

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
        }
    }
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
        try set(ZMQ_LINGER, Int32(0))
    }

    deinit { close() }

    public func close() {
        if !closed { zmq_close(handle); closed = true }
    }

    public func set(_ option: Int32, _ value: Int32) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else { throw ZMQError("zmq_setsockopt(\(option))") }
    }

    public func set(_ option: Int32, _ value: Int64) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) == 0 else { throw ZMQError("zmq_setsockopt(\(option))") }
    }

    public func set(_ option: Int32, bytes: [UInt8]) throws {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, bytes.count) }
        guard rc == 0 else { throw ZMQError("zmq_setsockopt(\(option))") }
    }

    public func set(_ option: Int32, string: String) throws { try set(option, bytes: Array(string.utf8)) }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError("connect \(endpoint)") }
    }

    /// The endpoint actually bound (resolves "tcp://127.0.0.1:*" to its port).
    public var lastEndpoint: String {
        var buf = [CChar](repeating: 0, count: 256)
        var size = buf.count
        _ = zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buf, &size)
        return String(cString: buf)
    }

    /// Sends all frames as one multipart message. With `timeoutMs` (≥ 0) a full queue gives up
    /// after that long (throws isTimeout); nil blocks.
    public func send(_ frames: [[UInt8]], timeoutMs: Int32? = nil) throws {
        try set(ZMQ_SNDTIMEO, timeoutMs ?? -1)
        for (i, frame) in frames.enumerated() {
            let flags = i < frames.count - 1 ? ZMQ_SNDMORE : 0
            let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, frame.count, flags) }
            guard rc >= 0 else { throw ZMQError("send") }
        }
    }

    /// Receives one multipart message: at most `maxFrames` frames are kept (the rest are read and
    /// counted in `dropped`), so an oversized message cannot grow memory. nil on timeout.
    public func receive(timeoutMs: Int32, maxFrames: Int = 16) throws -> (frames: [[UInt8]], dropped: Int)? {
        try set(ZMQ_RCVTIMEO, timeoutMs)
        var frames: [[UInt8]] = []
        var dropped = 0
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            let rc = zmq_msg_recv(&msg, handle, 0)
            if rc < 0 {
                let e = ZMQError("receive")
                if e.isTimeout && frames.isEmpty && dropped == 0 { return nil }
                throw e
            }
            if frames.count < maxFrames {
                let size = zmq_msg_size(&msg)
                let data = zmq_msg_data(&msg)
                frames.append(size > 0 && data != nil ? Array(UnsafeRawBufferPointer(start: data, count: size)) : [])
            } else {
                dropped += 1
            }
            if zmq_msg_more(&msg) == 0 { break }
        }
        return (frames, dropped)
    }
}

/// ZeroMQ's version as "major.minor.patch".
public var zmqVersion: String {
    var a: Int32 = 0, b: Int32 = 0, c: Int32 = 0
    zmq_version(&a, &b, &c)
    return "\(a).\(b).\(c)"
}
