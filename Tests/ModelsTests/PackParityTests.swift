// The default pack end to end against the reference libraries (Tests/Fixtures/pack/golden.safetensors,
// written by tools/goldens/make_pack_goldens.py): identical captions (greedy and 3-beam) and purified
// images within PSNR ≥ 40 dB of diffusers' with the same seed.
import Foundation
import ImageIO
import Models
import NN
import Tensor
import TestSupport
import XCTest

final class PackParityTests: XCTestCase {
    func testPackMatchesReferenceLibraries() throws {
        let goldenPath = Fixtures.path("pack/golden.safetensors")
        let packDir = Fixtures.repositoryRoot + "/models/cifar10-mini"
        guard FileManager.default.fileExists(atPath: goldenPath), FileManager.default.fileExists(atPath: packDir + "/captioner/config.json"),
            FileManager.default.fileExists(atPath: packDir + "/unet/config.json")
        else {
            throw XCTSkip("the default pack has no captioner/purifier yet (or no pack golden)")
        }
        let golden = try SafeTensorsFile(path: goldenPath)
        let names = try JSONDecoder().decode([String].self, from: Data(golden.metadata["names"]!.utf8))
        guard let dir = try Fixtures.extractTestDev(names) else { throw XCTSkip("needs ../shared test-dev") }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let images = try names.map { try ImageCodec.decode(contentsOf: dir + "/" + $0) }
        let pack = try Pack(folder: packDir)
        let captioner = try XCTUnwrap(pack.captioner)

        func rows(_ key: String) throws -> [[Int]] {
            let (shape, v) = try golden.integers(key)
            return (0..<shape[0]).map { i in
                // transformers pads finished rows with [PAD] (0) after [SEP]; ours are unpadded.
                var row = Array(v[(i * shape[1])..<((i + 1) * shape[1])])
                while row.last == 0 { row.removeLast() }
                return row
            }
        }
        let c = pack.manifest.captioning
        let greedy = try captioner.caption(images, options: GenerationOptions(numBeams: 1, maxLength: c?.maxLength, minLength: c?.minLength))
        XCTAssertEqual(greedy.map(\.tokenIDs), try rows("captions.greedy"), "greedy captions differ from transformers")
        let beam = try pack.caption(images) ?? []
        XCTAssertEqual(beam.map(\.tokenIDs), try rows("captions.beam"), "beam captions differ from transformers")

        let expected = try golden.tensor("purified")
        let purifier = try XCTUnwrap(pack.purifier)
        for (i, img) in images.enumerated() {
            let params = pack.parameters(seed: UInt64(1000 + i))
            let out = try purifier.purify(img.tensor(), caption: beam[i].text, parameters: params)
            let ref = narrow(expected, axis: 0, start: i, length: 1)
            let a = out.scalars, b = ref.scalars
            let mse = zip(a, b).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(a.count)
            let psnr = mse == 0 ? Double.infinity : 10 * log10(1 / mse)
            recordParity(compare(out, ref, atol: 1e-2, rtol: 0, name: "pack purify \(names[i]) PSNR \(String(format: "%.1f", psnr)) dB"))
            XCTAssertGreaterThanOrEqual(psnr, 40, "\(names[i]): purified PSNR \(psnr) dB against diffusers")
        }
    }
}
