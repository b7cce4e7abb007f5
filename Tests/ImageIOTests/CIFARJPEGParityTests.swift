// Every ../shared CIFAR-10 test-dev JPEG decodes to exactly PIL's pixels (digests in
// Tests/Fixtures/cifar10-test-dev-pil.txt, written by tools/goldens/make_image_goldens.py).
import Foundation
import ImageIO
import TestSupport
import XCTest
import Digest

final class CIFARJPEGParityTests: XCTestCase {
    func testAllTestDevImagesMatchPIL() throws {
        guard let dir = try Fixtures.extractTestDev() else {
            throw XCTSkip("../shared/data/cifar10/test-dev.tar.gz not found (the ../shared data folder is needed)")
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let listing = try String(contentsOfFile: Fixtures.path("cifar10-test-dev-pil.txt"), encoding: .utf8)
        let entries = listing.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertEqual(entries.count, 9000)
        var mismatched: [String] = []
        for e in entries {
            let data = try Data(contentsOf: URL(fileURLWithPath: (dir as NSString).appendingPathComponent(e[0])))
            let img = try ImageCodec.decode([UInt8](data))
            let digest = SHA256.hex(img.pixels)
            if digest != e[1] { mismatched.append(e[0]) }
        }
        print("CIFAR-10 test-dev JPEG parity: \(entries.count - mismatched.count)/\(entries.count) identical to PIL")
        XCTAssertEqual(mismatched, [], "\(mismatched.count) images decode differently from PIL")
    }
}
