// Shared scaffolding for the tests that run the real lgapd: a temp directory per test, the daemons and
// subscribers it started (killed and stopped in tearDown, even after a failure, with lgapd's stderr
// printed when the test failed), waiting on conditions with deadlines, and the two packs — the
// repository's default, its classifier alone (fast) and a slow one with a tiny diffusion purifier.
import Foundation
import JobModel
import Messaging
import Provenance
import ServiceHarness
import TestSupport
import XCTest

class ServiceTestCase: XCTestCase {
    private(set) var tmp = ""
    private(set) var context: ZMQContext!
    private var daemons: [DaemonProcess] = []
    private var collectors: [ResultCollector] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        // Short path: AF_UNIX socket paths must fit in 108 bytes.
        tmp = "/tmp/lgap-svc-" + String(UUID().uuidString.prefix(8)).lowercased()
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        context = try ZMQContext()
        // Fails here, clearly, when lgapd was not built beside the tests.
        _ = try DaemonProcess.executable
    }

    override func tearDown() {
        for c in collectors { c.stop() }
        let failed = (testRun?.failureCount ?? 0) + (testRun?.unexpectedExceptionCount ?? 0) > 0
        for d in daemons {
            d.kill()
            if failed { print(d.logTail) }
        }
        daemons = []
        collectors = []
        context = nil
        if !failed { try? FileManager.default.removeItem(atPath: tmp) } else { print("kept \(tmp) for inspection") }
        super.tearDown()
    }

    // MARK: Daemons and clients

    static var defaultPack: String { Fixtures.repositoryRoot + "/models/cifar10-mini" }

    /// The stages a job runs on the default pack: captioning and purification only when the pack ships
    /// those models (the pack grows as its models are trained; the tests follow what is there).
    static var defaultPackStages: [String] {
        let has = { (folder: String) in FileManager.default.fileExists(atPath: defaultPack + "/" + folder + "/config.json") }
        return ["decode"] + (has("captioner") ? ["caption"] : []) + (has("unet") ? ["purify"] : []) + ["classify"]
    }

    /// Starts lgapd (registered for cleanup) and waits until it is ready; `database` shares another
    /// daemon's store.
    func startDaemon(_ options: DaemonProcess.Options, name: String = "d", database: String? = nil) throws -> DaemonProcess {
        let dir = tmp + "/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var o = options
        if let database { o.database = database }
        let d = try DaemonProcess(directory: dir, options: o)
        daemons.append(d)
        try d.start()
        return d
    }

    func collector(_ daemon: DaemonProcess) throws -> ResultCollector {
        let c = try ResultCollector(context: context, endpoint: daemon.resultsEndpoint)
        collectors.append(c)
        return c
    }

    func producer(_ daemon: DaemonProcess, _ type: SocketType) throws -> Producer {
        try Producer(context: context, type, endpoint: daemon.ingestEndpoint)
    }

    /// Probes until the collector's subscription is live (pull mode: PUSH, router mode: DEALER/REQ).
    @discardableResult
    func subscribe(_ results: ResultCollector, via producer: Producer, probePrefix: String = "probe") throws -> [String] {
        let png = try TestImages.png
        return try results.waitUntilSubscribed { n in
            let id = "\(probePrefix)-\(n)"
            if producer.type == .push {
                try producer.send(header: ["id": id], image: png)
            } else {
                let ack = try producer.submit(header: ["id": id], image: png)
                guard ack.status == .accepted else { throw DaemonError(description: "probe \(id) not accepted: \(ack)") }
            }
            return id
        }
    }

    func store(_ daemon: DaemonProcess) throws -> JobStore { try StoreLocation(daemon.database).openForQueries() }

    /// Ids of jobs accepted and not finished (waiting or in flight).
    func unfinished(_ store: JobStore) throws -> [String] {
        try [JobStatus.accepted, .processing].flatMap { status in
            try store.history(HistoryFilter(status: status, limit: 1_000_000)).compactMap { row -> String? in
                if case .job(let j) = row { return j.id } else { return nil }
            }
        }
    }

    /// SIGTERM; asserts lgapd exits 0 within `timeout`.
    func stop(_ daemon: DaemonProcess, timeout: TimeInterval = 30, file: StaticString = #filePath, line: UInt = #line) {
        let status = daemon.terminate(timeout: timeout)
        XCTAssertEqual(status, 0, "lgapd must exit 0 after SIGTERM\n\(daemon.logTail)", file: file, line: line)
    }

    // MARK: Waiting

    /// Polls `condition` until it holds; fails the test (and throws, ending it) at the deadline.
    func waitUntil(
        _ what: @autoclosure () -> String, timeout: TimeInterval, daemon: DaemonProcess? = nil,
        file: StaticString = #filePath, line: UInt = #line, _ condition: () throws -> Bool
    ) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if try condition() { return }
            if let daemon, !daemon.isRunning {
                XCTFail(
                    "lgapd exited (status \(daemon.exitStatus.map(String.init) ?? "?")) while waiting for \(what())\n\(daemon.logTail)",
                    file: file, line: line)
                throw DaemonError(description: "lgapd exited")
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        XCTFail("timed out after \(Int(timeout)) s waiting for \(what())" + (daemon.map { "\n" + $0.logTail } ?? ""), file: file, line: line)
        throw DaemonError(description: "timed out waiting for \(what())")
    }

    /// Restarts `daemon` whenever it dies (as systemd's Restart=on-failure would) until every id is
    /// final in the store; returns how many restarts it took.
    func superviseUntilFinal(_ daemon: DaemonProcess, ids: [String], store: JobStore, timeout: TimeInterval) throws -> Int {
        var restarts = 0
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if try ids.allSatisfy({ try store.job($0)?.status.isFinal == true }) { return restarts }
            if !daemon.isRunning {
                restarts += 1
                try daemon.start(samePorts: true)
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTFail("jobs not final after \(Int(timeout)) s and \(restarts) restarts\n\(daemon.logTail)")
        throw DaemonError(description: "timed out")
    }

    // MARK: Packs

    /// The default pack's classifier alone (decode → classify): hundreds of jobs a second, for tests
    /// that need volume rather than the models.
    func fastPack() throws -> String {
        let fm = FileManager.default
        let dir = tmp + "/fast-pack"
        if fm.fileExists(atPath: dir) { return dir }
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: dir + "/classifier", withDestinationPath: Self.defaultPack + "/classifier")
        try fm.copyItem(atPath: Self.defaultPack + "/pack.json", toPath: dir + "/pack.json")
        return dir
    }

    /// A pack with the tiny pixel-space purifier (Tests/Fixtures/diffusion/pixel-tiny) at 16×16 and the
    /// default pack's classifier; `steps` DDIM steps at strength 1 make each job slow enough to be
    /// caught mid-flight.
    func slowPack(steps: Int) throws -> String {
        let fm = FileManager.default
        let dir = tmp + "/slow-pack"
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let pixel = URL(fileURLWithPath: Fixtures.path("diffusion/pixel-tiny"))
        for part in ["unet", "scheduler", "text_encoder", "tokenizer"] {
            // text_encoder and tokenizer are relative links into ../sd15-tiny: link their real paths.
            let target = pixel.appendingPathComponent(part).resolvingSymlinksInPath().path
            try fm.createSymbolicLink(atPath: dir + "/" + part, withDestinationPath: target)
        }
        try fm.createSymbolicLink(atPath: dir + "/classifier", withDestinationPath: Self.defaultPack + "/classifier")
        let base = try Data(contentsOf: URL(fileURLWithPath: Self.defaultPack + "/pack.json"))
        guard var manifest = try JSONSerialization.jsonObject(with: base) as? [String: Any] else {
            throw DaemonError(description: "pack.json is not an object")
        }
        manifest["name"] = "slow-test-pack"
        manifest["image_size"] = [16, 16]
        manifest["purification"] = ["strength": 1.0, "steps": steps, "guidance": 3.0, "eta": 0.0, "ensemble": 1]
        manifest["captioning"] = nil
        try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: dir + "/pack.json"))
        return dir
    }
}
