// The pipeline's bounded queue: capacity is never exceeded, a full queue blocks the producer, and
// closing drains what is left.
import Foundation
import Pipeline
import XCTest

final class BoundedQueueTests: XCTestCase {
    func testPushBlocksWhenFullAndNeverExceedsCapacity() {
        let q = BoundedQueue<Int>(capacity: 3)
        let pushed = DispatchSemaphore(value: 0)
        let producer = Thread {
            for i in 0..<10 { q.push(i); pushed.signal() }
            q.close()
        }
        producer.start()
        // The producer gets 3 items in, then blocks.
        for _ in 0..<3 { XCTAssertEqual(pushed.wait(timeout: .now() + 2), .success) }
        XCTAssertEqual(pushed.wait(timeout: .now() + 0.3), .timedOut, "push must block on a full queue")
        XCTAssertEqual(q.count, 3)
        var got: [Int] = []
        while let batch = q.popBatch(max: 2, maxWait: 0.01) { got += batch; Thread.sleep(forTimeInterval: 0.005) }
        XCTAssertEqual(got, Array(0..<10))
        XCTAssertLessThanOrEqual(q.highWater, 3)
        XCTAssertFalse(q.push(99), "a closed queue refuses pushes")
    }

    func testMicroBatchWaitsForMoreItems() {
        let q = BoundedQueue<Int>(capacity: 8)
        q.push(1)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) {
            q.push(2); q.push(3)
        }
        let batch = q.popBatch(max: 3, maxWait: 1)
        XCTAssertEqual(batch, [1, 2, 3])
    }
}
