// The test's own ZeroMQ peers of lgapd, built on the Messaging module: a producer (PUSH for pull mode,
// DEALER or REQ for router mode) and a subscriber that collects every published result on a thread
// of its own.
import Foundation
import JobModel
import Messaging

/// A job producer. Not thread-safe (a ZeroMQ socket belongs to one thread).
public final class Producer {
    public let socket: ZMQSocket
    public let type: SocketType

    public init(context: ZMQContext, _ type: SocketType, endpoint: String) throws {
        precondition([.push, .dealer, .req].contains(type), "a producer is PUSH, DEALER or REQ")
        self.type = type
        socket = try ZMQSocket(context, type)
        try socket.setReconnectInterval(milliseconds: 20)
        try socket.connect(endpoint)
    }

    /// JSON for a header object (sorted keys, so tests can reason about sizes).
    public static func json(_ object: Any) -> [UInt8] {
        // Fragments (a bare string or number) are allowed so tests can send "header not an object".
        Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed])) ?? Data())
    }

    public func send(_ frames: [[UInt8]]) throws { try socket.send(frames, timeoutMs: 10_000) }

    public func send(header: [String: Any], image: [UInt8]) throws { try send([Self.json(header), image]) }

    /// The next acknowledgement (router mode); throws when none arrives within `timeout`.
    public func ack(timeout: TimeInterval = 30) throws -> Ack {
        guard let reply = try socket.receive(timeoutMs: Int32(timeout * 1000)) else {
            throw DaemonError(description: "no acknowledgement within \(Int(timeout)) s")
        }
        guard let last = reply.frames.last, let ack = Ack.decode(last) else {
            throw DaemonError(description: "not an acknowledgement: \(reply.frames.map { String(decoding: $0, as: UTF8.self) })")
        }
        return ack
    }

    /// Sends one message and returns its acknowledgement (router mode).
    public func submit(_ frames: [[UInt8]], timeout: TimeInterval = 30) throws -> Ack {
        try send(frames)
        return try ack(timeout: timeout)
    }

    public func submit(header: [String: Any], image: [UInt8], timeout: TimeInterval = 30) throws -> Ack {
        try submit([Self.json(header), image], timeout: timeout)
    }
}

/// Subscribes to lgapd's results and keeps every message, in arrival order.
public final class ResultCollector: @unchecked Sendable {
    private let lock = NSCondition()
    private var messages: [[String: Any]] = []
    private var malformed: [String] = []
    private var running = true
    private let finished = DispatchSemaphore(value: 0)

    public init(context: ZMQContext, endpoint: String) throws {
        let socket = try ZMQSocket(context, .sub)
        try socket.subscribe(topic: "result")
        try socket.setReconnectInterval(milliseconds: 20)
        try socket.connect(endpoint)
        // From here on the socket belongs to the collector thread.
        let t = Thread { [self] in
            while isRunning {
                guard let msg = try? socket.receive(timeoutMs: 50) else { continue }
                lock.lock()
                if msg.frames.count == 2, msg.frames[0] == Array("result".utf8),
                    let obj = try? JSONSerialization.jsonObject(with: Data(msg.frames[1])) as? [String: Any]
                {
                    messages.append(obj)
                } else {
                    malformed.append(msg.frames.map { String(decoding: $0.prefix(200), as: UTF8.self) }.joined(separator: " | "))
                }
                lock.broadcast()
                lock.unlock()
            }
            socket.close()
            finished.signal()
        }
        t.name = "test-results"
        t.start()
    }

    private var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }

    public func stop() {
        lock.lock()
        let was = running
        running = false
        lock.unlock()
        if was { _ = finished.wait(timeout: .now() + 5) }
    }

    public var all: [[String: Any]] { lock.lock(); defer { lock.unlock() }; return messages }
    public var malformedMessages: [String] { lock.lock(); defer { lock.unlock() }; return malformed }

    public func results(for id: String) -> [[String: Any]] { all.filter { $0["id"] as? String == id } }

    /// Waits until a result has arrived for every id; the ids still missing (empty: all arrived).
    @discardableResult
    public func wait(for ids: some Collection<String>, timeout: TimeInterval) -> Set<String> {
        let deadline = Date(timeIntervalSinceNow: timeout)
        lock.lock()
        defer { lock.unlock() }
        while true {
            let seen = Set(messages.compactMap { $0["id"] as? String })
            let missing = Set(ids).subtracting(seen)
            if missing.isEmpty || !lock.wait(until: deadline) { return missing }
        }
    }

    /// PUB/SUB has no handshake a client can see, so the subscription is proven live by sending probe
    /// jobs (`send(n)` submits probe n and returns its id) until the result of one arrives. Returns
    /// the probe ids sent.
    public func waitUntilSubscribed(timeout: TimeInterval = 60, send: (Int) throws -> String) throws -> [String] {
        let deadline = Date(timeIntervalSinceNow: timeout)
        var ids: [String] = []
        while Date() < deadline {
            ids.append(try send(ids.count))
            if let last = ids.last, wait(for: [last], timeout: 1).isEmpty { return ids }
            if ids.contains(where: { !results(for: $0).isEmpty }) { return ids }
        }
        throw DaemonError(description: "no probe result arrived within \(Int(timeout)) s (\(ids.count) probes)")
    }
}
