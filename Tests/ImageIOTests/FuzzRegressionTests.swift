// Replays the fuzzers' inputs in every test run: the committed seed corpora (Fuzz/Corpus/<target>) and
// any input a fuzzer once crashed on (Tests/Fixtures/fuzz/<target>/, copied there after the fix), plus
// deterministic mutations of every seed — each prefix truncation and a fixed set of byte flips. Each
// goes through the same entry the libFuzzer target calls (a crash kills the test run) and through the
// parser directly, where a refusal must be the parser's own error type with a non-empty message and
// an accepted image must respect the limits.
import Foundation
import ImageIO
import LGAPFuzzSupport
import Messaging
import TestSupport
import XCTest

final class FuzzRegressionTests: XCTestCase {
    private static let targets = ["FuzzPNG": "png", "FuzzJPEG": "jpeg", "FuzzPPM": "ppm"]

    private func inputs(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
        var out: [(String, [UInt8])] = []
        for dir in [Fixtures.repositoryRoot + "/Fuzz/Corpus/" + target, Fixtures.path("fuzz/" + target)] {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { continue }
            for n in names.sorted() {
                out.append((n, [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + n)))))
            }
        }
        return out
    }

    /// Every prefix at a stride (all of them for short inputs) and 64 single-byte flips at fixed positions.
    private func mutations(of bytes: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        let stride = max(1, bytes.count / 256)
        for n in Swift.stride(from: 0, to: bytes.count, by: stride) { out.append(Array(bytes[..<n])) }
        var rng = SplitMix(state: UInt64(bytes.count))
        for _ in 0..<64 where !bytes.isEmpty {
            var m = bytes
            m[rng.int(m.count)] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            out.append(m)
        }
        return out
    }

    func testImageDecodersOnCorporaAndMutations() throws {
        for (target, format) in Self.targets {
            let seeds = try inputs(target)
            XCTAssertFalse(seeds.isEmpty, "\(target): no seed corpus")
            var decoded = 0, refused = 0
            for seed in seeds {
                for bytes in [seed.bytes] + mutations(of: seed.bytes) {
                    FuzzEntry.decode(bytes, format: format)
                    do {
                        let img = try ImageCodec.decode(bytes, format: ImageFormat(name: format)!, limits: FuzzEntry.limits)
                        XCTAssertEqual(img.pixels.count, img.width * img.height * 3, "\(target)/\(seed.name)")
                        XCTAssertTrue(img.width * img.height <= FuzzEntry.limits.maxPixels, "\(target)/\(seed.name)")
                        decoded += 1
                    } catch let e as ImageError {
                        XCTAssertFalse(e.description.isEmpty, "\(target)/\(seed.name): empty error message")
                        refused += 1
                    }
                }
            }
            // The corpus holds valid images (they must decode) and the truncations must be refused.
            XCTAssertGreaterThan(decoded, 0, target)
            XCTAssertGreaterThan(refused, 0, target)
            print("\(target): \(seeds.count) inputs, \(decoded) decoded, \(refused) refused with a reason")
        }
    }

    func testJobHeaderParserOnCorpusAndMutations() throws {
        let seeds = try inputs("FuzzJobHeader")
        XCTAssertGreaterThan(seeds.count, 10)
        var parsed = 0, refused = 0
        for seed in seeds {
            for bytes in [seed.bytes] + mutations(of: seed.bytes) {
                FuzzEntry.jobHeader(bytes)
                do {
                    _ = try JobHeader.parse(bytes, limits: HeaderLimits())
                    parsed += 1
                } catch let e as ProtocolError {
                    XCTAssertFalse(e.description.isEmpty, "\(seed.name): empty reason")
                    refused += 1
                }
            }
        }
        XCTAssertGreaterThan(parsed, 0)
        XCTAssertGreaterThan(refused, 0)
        print("FuzzJobHeader: \(seeds.count) inputs, \(parsed) parsed, \(refused) refused with a reason")
    }
}
