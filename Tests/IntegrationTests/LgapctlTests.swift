// lgapctl against a running lgapd (the interfaces other tools rely on): submit --wait prints one result
// per file, and history / show / stats / export / replay read the same jobs back from the database.
import Digest
import Foundation
import ImageIO
import TestSupport
import JobModel
import ServiceHarness
import XCTest

final class LgapctlTests: ServiceTestCase {
    func ctl(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        let r = try DaemonProcess.run("lgapctl", arguments: arguments, directory: tmp, timeout: 120)
        XCTAssertEqual(r.status, 0, "lgapctl \(arguments.joined(separator: " "))\n\(r.stderr)", file: file, line: line)
        return r.stdout.split(separator: "\n").map { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? ["unparsed": String(line)]
        }
    }

    func testSubmitWaitThenHistoryShowStatsExportReplay() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: Self.defaultPack))
        let folder = Fixtures.path("blip/images")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".png") }.sorted()

        let submitted = try ctl([
            "submit", "--endpoint", daemon.ingestEndpoint, "--results", daemon.resultsEndpoint, "--mode", "router",
            "--label", "cat", "--wait", "--json", "--timeout", "60", folder
        ])
        XCTAssertEqual(submitted.count, files.count, "one line per file: \(submitted)")
        XCTAssertTrue(submitted.allSatisfy { $0["status"] as? String == "done" }, "\(submitted)")
        XCTAssertEqual(Set(submitted.compactMap { $0["file"] as? String }), Set(files.map { folder + "/" + $0 }), "each result names its file")
        let ids = submitted.compactMap { $0["id"] as? String }
        XCTAssertEqual(Set(ids).count, files.count)

        let history = try ctl(["history", "--db", daemon.database, "--json", "--limit", "100"])
        XCTAssertEqual(Set(history.compactMap { $0["id"] as? String }), Set(ids))
        XCTAssertTrue(history.allSatisfy { $0["ground_truth"] as? String == "cat" && $0["label"] is String })
        XCTAssertEqual(try ctl(["history", "--db", daemon.database, "--json", "--status", "rejected"]).count, 0)

        // show: the stored input is the file's bytes; the models of the run are listed.
        guard let one = submitted.first, let id = one["id"] as? String else { return XCTFail("no job") }
        let shown = try ctl(["show", id, "--db", daemon.database, "--json"]).first ?? [:]
        let meta = shown["meta"] as? [String: Any]
        let path = try XCTUnwrap(one["file"] as? String)
        XCTAssertEqual(meta?["file"] as? String, path, "show gives the meta lgapctl sent: \(shown)")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(shown["input_sha256"] as? String, SHA256.hex(bytes))
        XCTAssertEqual(shown["label"] as? String, one["label"] as? String)
        XCTAssertFalse((shown["models"] as? [Any] ?? []).isEmpty, "models of the run: \(shown)")

        let stats = try ctl(["stats", "--db", daemon.database, "--json"]).first ?? [:]
        XCTAssertEqual((stats["jobs"] as? [String: Int])?["done"], files.count, "\(stats)")

        // export --input writes the stored input as PNG: the same pixels as the file.
        let exported = tmp + "/exported.png"
        _ = try DaemonProcess.run("lgapctl", arguments: ["export", id, "--db", daemon.database, "--input", exported], directory: tmp)
        XCTAssertEqual(try ImageCodec.decode(contentsOf: exported).pixels, try ImageCodec.decode(bytes).pixels)

        // replay re-runs the job from its stored input and parameters.
        let replayed = try ctl(["replay", id, "--db", daemon.database, "--json", "--threads", "1"]).first ?? [:]
        XCTAssertEqual(replayed["label_matches"] as? Bool, true, "\(replayed)")
        stop(daemon)
    }

    /// Operator output and files: control characters in stored text are escaped; --status is checked;
    /// keygen and export never follow a link nor overwrite unless asked (export --force), and a secret
    /// key is 0600 from its creation.
    func testEscapingValidationAndSafeFiles() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: try fastPack()))
        let dealer = try producer(daemon, .dealer)
        XCTAssertEqual(try dealer.submit(header: ["id": "esc", "label": "cat\u{1B}[2J\nFAKE"], image: try TestImages.png).status, .accepted)
        let store = try store(daemon)
        try waitUntil("done", timeout: 30, daemon: daemon) { try store.job("esc")?.status == .done }
        for args in [["show", "esc"], ["history"]] {
            let r = try DaemonProcess.run("lgapctl", arguments: args + ["--db", daemon.database], directory: tmp)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertFalse(r.stdout.unicodeScalars.contains { $0.value == 0x1B }, "\(args[0]) printed a raw ESC")
            if args[0] == "show" { XCTAssertTrue(r.stdout.contains("\\u{1B}"), "show makes the escape visible:\n\(r.stdout)") }
        }
        let bogus = try DaemonProcess.run("lgapctl", arguments: ["history", "--status", "bogus", "--db", daemon.database], directory: tmp)
        XCTAssertNotEqual(bogus.status, 0, "an unknown status is an error, not an empty list")
        XCTAssertTrue(bogus.stderr.contains("bogus"), bogus.stderr)

        // export: an existing file is kept unless --force; a symbolic link is never followed.
        let target = tmp + "/victim", link = tmp + "/link.png", out = tmp + "/in.png"
        try "precious".write(toFile: target, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        for (path, force) in [(link, false), (link, true), (target, false)] {
            let r = try DaemonProcess.run(
                "lgapctl", arguments: ["export", "esc", "--db", daemon.database, "--input", path] + (force ? ["--force"] : []),
                directory: tmp)
            XCTAssertNotEqual(r.status, 0, "export to \(path) force \(force) must be refused")
        }
        XCTAssertEqual(try String(contentsOfFile: target, encoding: .utf8), "precious")
        XCTAssertEqual(try DaemonProcess.run("lgapctl", arguments: ["export", "esc", "--db", daemon.database, "--input", out], directory: tmp).status, 0)
        XCTAssertEqual(
            try DaemonProcess.run(
                "lgapctl", arguments: ["export", "esc", "--db", daemon.database, "--input", out, "--force"],
                directory: tmp
            ).status, 0)

        // keygen: a new file, mode 0600; an existing path or a link is refused.
        let key = tmp + "/producer.key"
        XCTAssertEqual(try DaemonProcess.run("lgapctl", arguments: ["keygen", "--output", key], directory: tmp).status, 0)
        let mode = try FileManager.default.attributesOfItem(atPath: key)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
        XCTAssertNotEqual(try DaemonProcess.run("lgapctl", arguments: ["keygen", "--output", key], directory: tmp).status, 0)
        XCTAssertNotEqual(try DaemonProcess.run("lgapctl", arguments: ["keygen", "--output", link], directory: tmp).status, 0)
        XCTAssertEqual(try String(contentsOfFile: target, encoding: .utf8), "precious")
        stop(daemon)
    }
}
