// The crash journal's verdicts: a stage named by a crashed run narrows the suspects to that stage;
// no entry (a clean stop, or a death without a handler) and "-" (a crash outside the stages) blame
// everything still in flight.
import Foundation
import JobModel
@testable import Service
import XCTest

final class CrashJournalTests: XCTestCase {
    func testVerdicts() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(CrashJournal.read(path: path), .clean, "no file")
        try "purify 4\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(CrashJournal.read(path: path), .crashed(stage: .purify, signal: 4))
        XCTAssertEqual(CrashJournal.read(path: path).crashedStage, .purify)
        try "- 11\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(CrashJournal.read(path: path), .crashed(stage: nil, signal: 11))
        XCTAssertNil(CrashJournal.read(path: path).crashedStage)
        CrashJournal.clear(path: path)
        XCTAssertEqual(CrashJournal.read(path: path), .clean)
    }
}
