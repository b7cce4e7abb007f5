// lgapctl results-proxy: one results endpoint for a fleet. Every lgapd publishes its own results;
// subscribers should not have to know the nodes. ZeroMQ's own proxy (XSUB ↔ XPUB) forwards the
// subscribers' subscriptions upstream and the nodes' results downstream, so a subscriber's topic
// filter still applies at each node. Nodes reach it either way: the proxy connects to each node's
// bound results endpoint (--node), or binds an endpoint the nodes connect to (--frontend, with
// `[results] connect = true` in their configuration: adding a node changes nothing here).
import ArgumentParser
import Foundation
import Messaging

struct ResultsProxy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "results-proxy",
        abstract: "Republish the results of many lgapd nodes on one endpoint (zmq_proxy, XSUB → XPUB).")

    @Option(name: .customLong("node"), help: "A node's bound results endpoint to subscribe to (repeatable).")
    var nodes: [String] = []

    @Option(help: "Endpoint to bind for nodes that connect their results here ([results] connect = true).")
    var frontend: String?

    @Option(help: "Endpoint subscribers connect to.")
    var bind = "tcp://127.0.0.1:5557"

    @Option(name: .customLong("high-water-mark"), help: "Results queued per subscriber before a slow one misses some (PUB semantics).")
    var highWaterMark: Int32 = 10_000

    func validate() throws {
        if nodes.isEmpty && frontend == nil { throw ValidationError("name the nodes (--node, repeatable) or a --frontend for nodes to connect to") }
    }

    func run() throws {
        let context = try ZMQContext()
        let upstream = try ZMQSocket(context, .xsub)
        let downstream = try ZMQSocket(context, .xpub)
        try upstream.setReceiveHighWaterMark(highWaterMark)
        try downstream.setSendHighWaterMark(highWaterMark)
        if let frontend { try upstream.bind(frontend) }
        for n in nodes { try upstream.connect(n) }
        try downstream.bind(bind)
        let from = (nodes + (frontend.map { ["\($0) (bound)"] } ?? [])).joined(separator: ", ")
        FileHandle.standardError.write(Data("results-proxy: \(from) → \(downstream.lastEndpoint)\n".utf8))
        // Runs until the process is stopped; it holds no state worth a graceful stop.
        try runProxy(frontend: upstream, backend: downstream)
    }
}
