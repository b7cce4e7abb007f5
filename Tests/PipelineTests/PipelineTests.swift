// The stage chain: items flow through every stage in order, a full stage stalls the one before it,
// and draining finishes what is inside front to back within a deadline (or reports that it did not).
import Foundation
@testable import Pipeline
import XCTest

final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Int] = []
    func add(_ xs: [Int]) { lock.lock(); items += xs; lock.unlock() }
    var all: [Int] { lock.lock(); defer { lock.unlock() }; return items }
}

final class PipelineTests: XCTestCase {
    func testItemsFlowThroughEveryStageAndDrain() {
        let out = Box()
        let p = Pipeline<Int>([
            StageSpec(name: "double", settings: StageSettings(capacity: 2, workers: 1, maxBatch: 4)) { $0.map { $0 * 2 } },
            StageSpec(name: "plus", settings: StageSettings(capacity: 2, workers: 2, maxBatch: 1)) { $0.map { $0 + 1 } },
            StageSpec(name: "sink", settings: StageSettings(capacity: 2, workers: 1, maxBatch: 8)) {
                out.add($0); return $0
            }
        ])
        p.start()
        for i in 0..<100 { XCTAssertTrue(p.push(i)) }
        XCTAssertTrue(p.drain(deadline: Date(timeIntervalSinceNow: 10)))
        XCTAssertEqual(out.all.sorted(), (0..<100).map { $0 * 2 + 1 })
        XCTAssertFalse(p.push(1), "closed after draining")
        XCTAssertTrue(p.snapshot.allSatisfy { $0.highWater <= $0.capacity })
        XCTAssertEqual(p.snapshot.map(\.processed), [100, 100, 100])
    }

    func testDrainPastItsDeadlineSaysSo() {
        let p = Pipeline<Int>([
            StageSpec(name: "slow", settings: StageSettings(capacity: 4, workers: 1)) {
                Thread.sleep(forTimeInterval: 0.5); return $0
            }
        ])
        p.start()
        for i in 0..<3 { p.push(i) }
        let t0 = Date()
        XCTAssertFalse(p.drain(deadline: Date(timeIntervalSinceNow: 0.2)))
        XCTAssertLessThan(Date().timeIntervalSince(t0), 0.45)
    }
}
