// lgapd's configuration at the process boundary: an invalid file or flag stops it with exit status 2
// and a message naming the key, before it touches the database; the documented Config/lgapd.toml is
// accepted as shipped.
import Foundation
import TestSupport
import JobModel
import ServiceHarness
import XCTest

final class ConfigTests: ServiceTestCase {
    struct Case {
        let name: String
        let toml: String
        var flags: [String] = []
        /// Words the error message must contain (the key, and the offending value where there is one).
        let mentions: [String]
    }

    let cases: [Case] = [
        Case(name: "unknown key", toml: "[daemon]\nbogus_key = 1\n", mentions: ["bogus_key", "[daemon]"]),
        Case(name: "unknown section", toml: "[purifier]\nsteps = 3\n", mentions: ["purifier"]),
        Case(name: "wrong type (string for an integer)", toml: "[daemon]\nthreads = \"two\"\n", mentions: ["threads", "integer"]),
        Case(name: "wrong type (float for an integer)", toml: "[ingest]\nhigh_water_mark = 1.5\n", mentions: ["high_water_mark"]),
        Case(name: "wrong type (string for a bool)", toml: "[store]\nkeep_purified = \"yes\"\n", mentions: ["keep_purified"]),
        Case(name: "mode = push", toml: "[ingest]\nmode = \"push\"\n", mentions: ["mode", "push"]),
        Case(name: "out of range", toml: "[pipeline]\nqueue_capacity = 0\n", mentions: ["queue_capacity"]),
        Case(name: "durability", toml: "[store]\ndurability = \"sometimes\"\n", mentions: ["durability", "sometimes"]),
        Case(name: "seed", toml: "[purification]\nseed = \"lucky\"\n", mentions: ["seed"]),
        Case(name: "section not a table", toml: "daemon = 3\n", mentions: ["daemon"]),
        Case(name: "TOML syntax", toml: "[daemon\nthreads = 1\n", mentions: ["lgapd.toml"]),
        Case(name: "endpoint without a transport", toml: "[ingest]\nendpoint = \"127.0.0.1:5555\"\n", mentions: ["ingest.endpoint"]),
        Case(name: "curve without keys", toml: "[security]\ncurve = true\n", mentions: ["server_secret_key_file"]),
        Case(
            name: "plaintext beyond loopback", toml: "[ingest]\nendpoint = \"tcp://0.0.0.0:5555\"\n",
            mentions: ["ingest.endpoint", "allow_plaintext_remote"]),
        Case(name: "bad node name", toml: "[daemon]\nnode = \"a b\"\n", mentions: ["node"]),
        // In range for the file, out of range for the pack: used to start, then reject every job.
        Case(name: "default strength the pack cannot run", toml: "[purification]\nstrength = 5.0\n", mentions: ["[purification]", "strength"]),
        Case(name: "retention below zero", toml: "[store]\nretain_days = -1\n", mentions: ["retain_days"]),
        Case(name: "--ingest-mode push", toml: "", flags: ["--ingest-mode", "push"], mentions: ["--ingest-mode"]),
        Case(name: "--log-level loud", toml: "", flags: ["--log-level", "loud"], mentions: ["--log-level", "loud"])
    ]

    func testInvalidConfigurationExitsWithStatus2NamingTheKey() throws {
        for (n, c) in cases.enumerated() {
            let dir = tmp + "/case-\(n)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let config = dir + "/lgapd.toml"
            try c.toml.write(toFile: config, atomically: true, encoding: .utf8)
            let db = dir + "/db.sqlite"
            let (status, stderr) = try DaemonProcess.runToExit(
                arguments: ["--config", config, "--db", db, "--pack", Self.defaultPack] + c.flags, directory: dir)
            XCTAssertEqual(status, 2, "\(c.name): exit status\n\(stderr)")
            for word in c.mentions { XCTAssertTrue(stderr.contains(word), "\(c.name): message must mention '\(word)':\n\(stderr)") }
            XCTAssertTrue(stderr.contains("invalid configuration"), "\(c.name):\n\(stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: db), "\(c.name): database created despite the invalid configuration")
        }
    }

    /// --check-config: exit 0 naming the pack for a good configuration, 2 for one lgapd would refuse,
    /// without opening the store.
    func testCheckConfig() throws {
        let good = tmp + "/good.toml", bad = tmp + "/bad.toml", db = tmp + "/never.sqlite"
        try "[purification]\nstrength = 0.2\n".write(toFile: good, atomically: true, encoding: .utf8)
        try "[purification]\nensemble = 1000\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let ok = try DaemonProcess.runToExit(arguments: ["--check-config", "--config", good, "--db", db, "--pack", Self.defaultPack], directory: tmp)
        XCTAssertEqual(ok.0, 0, ok.1)
        let refused = try DaemonProcess.runToExit(arguments: ["--check-config", "--config", bad, "--db", db, "--pack", Self.defaultPack], directory: tmp)
        XCTAssertEqual(refused.0, 2, refused.1)
        XCTAssertTrue(refused.1.contains("ensemble"), refused.1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: db), "--check-config never creates the store")
    }

    /// A pack that cannot be loaded is not a configuration error: exit status 1, naming the folder.
    func testMissingPackExitsWithStatus1() throws {
        let missing = tmp + "/no-such-pack"
        try "".write(toFile: tmp + "/empty.toml", atomically: true, encoding: .utf8)
        let (status, stderr) = try DaemonProcess.runToExit(
            arguments: [
                "--config", tmp + "/empty.toml", "--db", tmp + "/db.sqlite", "--pack", missing, "--ingest", "tcp://127.0.0.1:1", "--results",
                "tcp://127.0.0.1:2"
            ],
            directory: tmp)
        XCTAssertEqual(status, 1, stderr)
        XCTAssertTrue(stderr.contains(missing), stderr)
    }

    /// The shipped Config/lgapd.toml (every key at its default) is valid; flags override its paths.
    func testShippedConfigIsAccepted() throws {
        var options = DaemonProcess.Options(mode: "router", pack: Self.defaultPack)
        options.configFile = Fixtures.repositoryRoot + "/Config/lgapd.toml"
        let daemon = try startDaemon(options)
        // Router mode and this database: the flags won over the file's pull mode and /var/lib path.
        let dealer = try producer(daemon, .dealer)
        XCTAssertEqual(try dealer.submit(header: ["id": "shipped"], image: try TestImages.png).status, .accepted)
        let store = try store(daemon)
        try waitUntil("the job done", timeout: 30, daemon: daemon) { try store.job("shipped")?.status == .done }
        stop(daemon)
    }
}
