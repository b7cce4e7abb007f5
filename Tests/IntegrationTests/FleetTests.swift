// Fleet mode on a real PostgreSQL server: several lgapd nodes share one store. Ids are unique across
// the fleet, a node killed for good loses its unfinished jobs to the survivors once its lease lapses
// (each run exactly once, with the parameters it was accepted with), a store outage stalls the fleet
// without losing anything, and both transport topologies work: producers connecting to every node,
// and nodes connecting to a producer-bound endpoint.
import Foundation
import JobModel
import Messaging
import Provenance
import ServiceHarness
import XCTest

final class FleetTests: ServiceTestCase {
    /// A database of its own on the test server; skipped (failed under CI) when there is none.
    func fleetDatabase() throws -> TestDatabase {
        guard let admin = TestDatabase.serverURL else {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                XCTFail("CI runs the fleet tests on PostgreSQL: LGAP_TEST_POSTGRES is not set (scripts/test-postgres.sh)")
            }
            throw XCTSkip("no test PostgreSQL server (LGAP_TEST_POSTGRES)")
        }
        let db = try TestDatabase(adminURL: admin)
        addTeardownBlock { db.drop() }
        return db
    }

    func node(_ name: String, mode: String, pack: String, database: String, ingest: [String: String] = [:]) -> DaemonProcess.Options {
        var o = DaemonProcess.Options(mode: mode, pack: pack)
        o.daemon["node"] = "\"\(name)\""
        o.daemon["lease_s"] = "4"
        o.daemon["heartbeat_s"] = "0.5"
        o.daemon["state_dir"] = "\"\(tmp)/\(name)\""  // the crash journal (SQLite keeps it beside its file)
        o.ingest = ingest
        o.database = database
        return o
    }

    /// Three nodes, one DEALER producer connected to all of them (ZeroMQ round-robins the jobs), 300
    /// jobs; one node is killed for good with work queued, then the database server dies for 10 s;
    /// resubmissions to the other nodes are duplicates; every accepted job ends done exactly once.
    /// (The slow test pack, not the classifier alone: node-c must still own unfinished work when it
    /// is killed, and the classifier alone finishes 300 jobs before the last ack.)
    func testNodeKilledForGoodAndStoreRestartLoseNothing() throws {
        let db = try fleetDatabase()
        XCTAssertTrue(TestPostgresServer.controllable, "the test server's data directory is known (LGAP_TEST_PGDATA)")
        let pack = try slowPack(steps: 12)
        let names = ["node-a", "node-b", "node-c"]
        let metricsPort = try DaemonProcess.freePorts().0
        let nodes = try names.map { name in
            var o = node(name, mode: "router", pack: pack, database: db.urlText)
            if name == "node-a" { o.sections["metrics"] = ["endpoint": "\"127.0.0.1:\(metricsPort)\""] }
            return try startDaemon(o, name: name)
        }
        let collectors = try nodes.map { try collector($0) }
        let store = try StoreLocation(db.urlText).openForQueries()
        let png = try TestImages.png

        let dealer = try producer(nodes[0], .dealer)
        for n in nodes.dropFirst() { try dealer.socket.connect(n.ingestEndpoint) }
        for (n, c) in zip(nodes, collectors) {
            // Probes each node directly until its subscription is live (probe ids are fleet-wide too).
            try subscribe(c, via: try producer(n, .dealer), probePrefix: "probe-" + n.directory.split(separator: "/").last!)
        }
        let probes = try store.counts()["done"] ?? 0
        let ids = (0..<300).map { "fleet-\($0)" }
        for id in ids {
            let ack = try dealer.submit(header: ["id": id, "params": ["seed": 11]], image: png)
            XCTAssertEqual(ack.status, .accepted, "\(id): \(ack)")
        }
        let owners = try Dictionary(grouping: ids) { try store.job($0)?.node ?? "?" }.mapValues(\.count)
        print("accepted per node: \(owners)")
        for name in names { XCTAssertGreaterThan(owners[name] ?? 0, 50, "ZeroMQ spreads the jobs over every node (\(owners))") }

        // node-c dies for good while it still owns unfinished jobs.
        nodes[2].kill()
        let killedAt = Date()
        // Read after the kill (nothing moves them before the lease lapses), so none finished in between.
        let orphans = try unfinished(store).filter { try store.job($0)?.node == "node-c" }
        XCTAssertGreaterThan(orphans.count, 0, "node-c must still own work when it is killed")
        print("killed node-c owning \(orphans.count) unfinished jobs; stopping the database server")

        // The database server dies (pg_ctl stop -m immediate) for 10 s: the survivors refuse new work
        // with a reason, say they are not ready, neither exit nor lose anything, and resume by themselves.
        try TestPostgresServer.stop(mode: "immediate")
        let outage = Date()
        let survivors = try producer(nodes[0], .dealer)
        try survivors.socket.connect(nodes[1].ingestEndpoint)
        let refused = try survivors.submit(header: ["id": "during-outage"], image: png)
        XCTAssertEqual(refused.status, .rejected, "\(refused)")
        XCTAssertEqual(refused.reason, .storeUnavailable, "\(refused)")
        try waitUntil("both survivors report not ready", timeout: 10) {
            nodes[0].log.contains("not ready") && nodes[1].log.contains("not ready")
        }
        let unready = try HTTPProbe.get(port: metricsPort, path: "/readyz")
        XCTAssertEqual(unready.status, 503, unready.body)
        XCTAssertTrue(unready.body.contains("store unavailable"), unready.body)
        XCTAssertEqual(try HTTPProbe.get(port: metricsPort, path: "/livez").status, 200, "alive, only not ready")
        Thread.sleep(until: outage.addingTimeInterval(10))
        try TestPostgresServer.start()
        _ = try? store.counts()  // the query connection died with the server: the next query reconnects
        print("database server back after \(Int(Date().timeIntervalSince(outage))) s")
        XCTAssertTrue(nodes[0].isRunning && nodes[1].isRunning, "the survivors outlive a store outage\n\(nodes[0].logTail)")
        try waitUntil("both survivors ready again", timeout: 30) {
            nodes[0].log.contains("ready again") && nodes[1].log.contains("ready again")
        }
        XCTAssertEqual(try HTTPProbe.get(port: metricsPort, path: "/readyz").status, 200)

        // Resubmitting every id (to whichever survivor is next) gives only duplicates, node-c's jobs too.
        for id in ids {
            var ack = try survivors.submit(header: ["id": id], image: png)
            // A node whose store connection is being re-established may still answer
            // store_unavailable (nothing recorded); the producer resends, as it must.
            while ack.status == .rejected && ack.reason == .storeUnavailable {
                Thread.sleep(forTimeInterval: 0.2)
                ack = try survivors.submit(header: ["id": id], image: png)
            }
            XCTAssertEqual(ack.status, .duplicate, "\(id): \(ack)")
        }

        try waitUntil("every accepted job done", timeout: 240, daemon: nodes[0]) {
            (try store.counts()["done"] ?? 0) >= probes + ids.count
        }
        print("all done \(Int(Date().timeIntervalSince(killedAt))) s after the kill; \(orphans.count) orphans of node-c")
        XCTAssertEqual(try store.counts(), ["done": probes + ids.count], "nothing lost, nothing extra")
        for id in ids {
            let job = try XCTUnwrap(try store.job(id), id)
            XCTAssertEqual(job.status, .done, id)
            XCTAssertEqual(job.params.seed, 11, "\(id): run with the parameters it was accepted with")
            let published = collectors.reduce(0) { $0 + $1.results(for: id).count }
            XCTAssertLessThanOrEqual(published, 1, "\(id): published at most once across the fleet")
        }
        for id in orphans {
            let owner = try store.job(id)?.node
            XCTAssertTrue(owner == "node-a" || owner == "node-b", "\(id): taken over by a survivor, not \(owner ?? "nil")")
        }
        let listed = try store.nodes().map(\.name)
        XCTAssertEqual(Set(listed), Set(names), "every node is listed")
        stop(nodes[0])
        stop(nodes[1])
    }

    /// Nodes connect to endpoints the producer binds (`[ingest] connect = true`): a PUSH producer feeds
    /// two PULL nodes, and a bound DEALER feeds two ROUTER nodes and gets every ack back. In router
    /// mode the nodes also connect their results to `lgapctl results-proxy`, and one subscriber of the
    /// proxy gets every node's results once. Adding a node needs no change at the producer or proxy.
    func testNodesConnectToAProducerBoundEndpoint() throws {
        let db = try fleetDatabase()
        let pack = try fastPack()
        let png = try TestImages.png
        for mode in ["pull", "router"] {
            let (port, proxyFrontend) = try DaemonProcess.freePorts()
            let endpoint = "tcp://127.0.0.1:\(port)"
            let bound = try ZMQSocket(context, mode == "pull" ? .push : .dealer)
            try bound.bind(endpoint)
            defer { bound.close() }
            var proxied: ResultCollector?
            if mode == "router" {
                let (_, proxyBackend) = try DaemonProcess.freePorts()
                let proxy = Process()
                proxy.executableURL = URL(fileURLWithPath: try DaemonProcess.product("lgapctl"))
                proxy.arguments = [
                    "results-proxy", "--frontend", "tcp://127.0.0.1:\(proxyFrontend)", "--bind", "tcp://127.0.0.1:\(proxyBackend)"
                ]
                try proxy.run()
                addTeardownBlock { proxy.terminate() }
                proxied = try ResultCollector(context: context, endpoint: "tcp://127.0.0.1:\(proxyBackend)")
                addTeardownBlock { proxied?.stop() }
            }
            let nodes = try ["\(mode)-1", "\(mode)-2"].map { name in
                var o = node(name, mode: mode, pack: pack, database: db.urlText, ingest: ["connect": "true"])
                // The harness passes --ingest/--results tcp://127.0.0.1:PORT: with connect = true, where to connect.
                o.ingestPort = port
                if mode == "router" {
                    o.sections["results"] = ["connect": "true"]
                    o.resultsPort = proxyFrontend
                } else {
                    o.resultsPort = try DaemonProcess.freePorts().1
                }
                return try startDaemon(o, name: name)
            }
            let store = try StoreLocation(db.urlText).openForQueries()
            func submit(_ id: String) throws {
                try bound.send([Producer.json(["id": id]), png], timeoutMs: 10_000)
                guard mode == "router" else { return }
                let reply = try XCTUnwrap(try bound.receive(timeoutMs: 30_000), "\(id): an ack")
                let ack = try XCTUnwrap(reply.frames.last.flatMap(Ack.decode), "\(id): an ack")
                XCTAssertEqual(ack.status, .accepted, "\(id): \(ack)")
            }
            // Both nodes' connections (and, through the proxy, both subscriptions) are up before the
            // stream starts: otherwise the first node to connect takes all.
            Thread.sleep(forTimeInterval: 0.5)
            let probes = try proxied?.waitUntilSubscribed { n in
                let id = "proxy-probe-\(n)"
                try submit(id)
                return id
            }
            if probes != nil { Thread.sleep(forTimeInterval: 0.5) }  // the other node's subscription too
            let ids = (0..<200).map { "\(mode)-job-\($0)" }
            for id in ids { try submit(id) }
            try waitUntil("\(mode): 200 jobs done", timeout: 120, daemon: nodes[0]) {
                try ids.allSatisfy { try store.job($0)?.status == .done }
            }
            let owners = try Dictionary(grouping: ids) { try store.job($0)?.node ?? "?" }.mapValues(\.count)
            print("\(mode), nodes connecting: \(owners)")
            XCTAssertEqual(owners.count, 2, "\(mode): both nodes took work (\(owners))")
            if let proxied {
                let missing = proxied.wait(for: ids, timeout: 30)
                XCTAssertEqual(missing, [], "every node's results reach the proxy's subscriber")
                for id in ids { XCTAssertEqual(proxied.results(for: id).count, 1, "\(id): once through the proxy") }
            }
            for n in nodes { stop(n) }
        }
    }
}
