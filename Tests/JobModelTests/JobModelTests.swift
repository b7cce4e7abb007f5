// The typed job model: README's reason table is generated from ReasonCode (and checked here, so the
// two cannot drift), the result message keeps its wire keys, and Sanitize neutralises control text.
import Foundation
@testable import JobModel
import Models
import TestSupport
import XCTest

final class JobModelTests: XCTestCase {
    /// README.md holds the reason table between <!-- reasons --> markers, one row per code, in the
    /// enum's order, with the enum's summary (`ReasonCode.markdownTable` writes it).
    func testReadmeListsEveryReasonCode() throws {
        let readme = try String(contentsOfFile: Fixtures.repositoryRoot + "/README.md", encoding: .utf8)
        let parts = readme.components(separatedBy: "<!-- reasons -->")
        XCTAssertEqual(parts.count, 3, "README.md needs the reason table between two <!-- reasons --> markers")
        guard parts.count == 3 else { return }
        XCTAssertEqual(
            parts[1].trimmingCharacters(in: .whitespacesAndNewlines), ReasonCode.markdownTable,
            "README's reason table differs from ReasonCode; paste ReasonCode.markdownTable:\n\(ReasonCode.markdownTable)")
    }

    func testResultMessageKeys() throws {
        var r = JobResult(
            id: "j", status: .done, stages: [.decode, .classify], stagesRun: [.decode], inputSha256: "00",
            params: PurificationParameters(strength: 0.1, steps: 50, guidance: 3, seed: 9, ensemble: 5), timingsMs: ["decode": 1])
        r.labelIndex = 3
        r.topK = [RankedClass(index: 3, label: "cat", probability: 0.5)]
        r.purifiedPNG = [1, 2, 3]
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.json)) as? [String: Any])
        XCTAssertEqual(Set(o.keys), ["id", "status", "stages", "stages_run", "input_sha256", "params", "label_index", "top_k", "timings_ms"])
        XCTAssertEqual((o["params"] as? [String: Any])?["seed"] as? Int, 9)
        XCTAssertNil(o["purifiedPNG"], "the PNG is stored, never published")
        r.failure = .failed(.purifyError, "x")
        XCTAssertEqual(r.status, .failed)
        XCTAssertEqual(r.reason, .purifyError)
    }

    func testSanitizeEscapesControlAndBidiCharacters() {
        XCTAssertEqual(Sanitize.text("ok\tfine"), "ok\tfine")
        XCTAssertEqual(Sanitize.text("a\nb"), "a\\u{A}b")
        XCTAssertEqual(Sanitize.text("\u{1B}[31mred"), "\\u{1B}[31mred")
        XCTAssertEqual(Sanitize.text("x\u{202E}y"), "x\\u{202E}y")
        XCTAssertEqual(Sanitize.text("café ✓"), "café ✓")
    }

    func testIdentifiers() {
        XCTAssertTrue(Identifiers.isValidJobID("cam7-000123:x_y.z"))
        XCTAssertFalse(Identifiers.isValidJobID(""))
        XCTAssertFalse(Identifiers.isValidJobID(String(repeating: "a", count: 129)))
        XCTAssertFalse(Identifiers.isValidJobID("a/b"))
        XCTAssertFalse(Identifiers.isValidNodeName("a:b"), "no colon in node names")
    }
}
