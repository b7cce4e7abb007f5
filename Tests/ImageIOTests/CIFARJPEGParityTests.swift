// Every ../shared CIFAR-10 test-dev JPEG decodes to exactly PIL's pixels (digests in
// Tests/Fixtures/cifar10-test-dev-pil.txt, written by tools/goldens/make_image_goldens.py).
import Foundation
import ImageIO
import TestSupport
import XCTest
import Digest

final class CIFARJPEGParityTests: XCTestCase {
    func testAllTestDevImagesMatchPIL() throws {
        let archive = (Fixtures.shared as NSString).appendingPathComponent("data/cifar10/test-dev.tar.gz")
        guard FileManager.default.fileExists(atPath: archive) else {
            throw XCTSkip("\(archive) not found (the ../shared data folder is needed)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-cifar-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        tar.arguments = ["tar", "xzf", archive, "-C", dir]
        try tar.run()
        tar.waitUntilExit()
        XCTAssertEqual(tar.terminationStatus, 0, "tar failed")

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
