// Decoding against PIL (Tests/Fixtures/images, written by tools/goldens/make_image_goldens.py),
// bad-input errors, PNG round trips and PIL-exact resizing.
import Foundation
import ImageIO
import NN
import Tensor
import TestSupport
import XCTest

final class ImageCodecTests: XCTestCase {
    func bytes(_ name: String) throws -> [UInt8] {
        let path = Fixtures.path("images/\(name)")
        guard let d = FileManager.default.contents(atPath: path) else { throw ImageError.corrupt(.png, "missing fixture \(path)") }
        return [UInt8](d)
    }

    func testDecodeMatchesPIL() throws {
        let expected = try SafeTensorsFile(path: Fixtures.path("images/pil-pixels.safetensors"))
        XCTAssertEqual(expected.names.count, 11)
        for name in expected.names {
            let img = try ImageCodec.decode(try bytes(name))
            let (shape, values) = try expected.integers(name)
            XCTAssertEqual([img.height, img.width, 3], shape, name)
            let got = img.pixels.map(Int.init)
            let diffs = zip(got, values).filter { $0 != $1 }.count
            XCTAssertEqual(diffs, 0, "\(name): \(diffs) of \(values.count) bytes differ from PIL")
        }
    }

    func testSniffing() throws {
        XCTAssertEqual(ImageFormat.sniff(try bytes("rgb.png")), .png)
        XCTAssertEqual(ImageFormat.sniff(try bytes("baseline.jpg")), .jpeg)
        XCTAssertEqual(ImageFormat.sniff(try bytes("rgb.ppm")), .ppm)
        XCTAssertNil(ImageFormat.sniff(Array("GIF89a".utf8)))
        XCTAssertThrowsError(try ImageCodec.decode(Array("hello world".utf8))) { e in
            XCTAssertEqual(e as? ImageError, .unknownFormat)
        }
    }

    func testTruncatedAndCorruptFilesThrow() throws {
        for name in ["rgb.png", "interlaced.png", "baseline.jpg", "progressive.jpg", "rgb.ppm"] {
            let full = try bytes(name)
            for cut in [full.count / 3, full.count / 2, full.count - 3] {
                XCTAssertThrowsError(try ImageCodec.decode(Array(full.prefix(cut))), "\(name) cut at \(cut)") { e in
                    guard let ie = e as? ImageError, case .corrupt = ie else { return XCTFail("\(name): \(e)") }
                    XCTAssertFalse(ie.description.isEmpty)
                }
            }
        }
        // Flip bytes inside the PNG's compressed data: the CRC check must catch it.
        var png = try bytes("rgb.png")
        png[60] ^= 0xFF
        XCTAssertThrowsError(try ImageCodec.decode(png))
        // A JPEG with its scan data replaced by garbage.
        var jpg = try bytes("baseline.jpg")
        for i in (jpg.count - 200)..<(jpg.count - 2) { jpg[i] = UInt8(truncatingIfNeeded: i * 37) }
        XCTAssertThrowsError(try ImageCodec.decode(jpg))
    }

    func testOversizedHeaderIsRefusedBeforeAllocation() throws {
        let bomb = try bytes("bomb.png")
        let dims = try ImageCodec.dimensions(bomb)
        XCTAssertEqual(dims.width, 100000)
        XCTAssertThrowsError(try ImageCodec.decode(bomb)) { e in
            XCTAssertEqual(e as? ImageError, .tooLarge(.png, width: 100000, height: 100000, limits: ImageLimits()))
        }
        let small = ImageLimits(maxSide: 16, maxPixels: 10_000)
        for name in ["rgb.png", "baseline.jpg", "rgb.ppm"] {
            XCTAssertThrowsError(try ImageCodec.decode(try bytes(name), limits: small), name) { e in
                guard case .tooLarge = e as? ImageError else { return XCTFail("\(name): \(e)") }
            }
        }
        let ppmBomb = Array("P6 99999 99999 255\n".utf8)
        XCTAssertThrowsError(try ImageCodec.decode(ppmBomb)) { e in
            guard case .tooLarge = e as? ImageError else { return XCTFail("\(e)") }
        }
    }

    func testUnsupportedPPM() {
        XCTAssertThrowsError(try ImageCodec.decode(Array("P6 2 2 65535\n".utf8) + [UInt8](repeating: 0, count: 24))) { e in
            guard case .unsupported = e as? ImageError else { return XCTFail("\(e)") }
        }
    }

    func testPNGRoundTrip() throws {
        let img = try ImageCodec.decode(try bytes("rgb.png"))
        let again = try ImageCodec.decode(try ImageCodec.encodePNG(img))
        XCTAssertEqual(img, again)
        let ppm = try ImageCodec.decode(ImageCodec.encodePPM(img))
        XCTAssertEqual(img, ppm)
    }

    func testTensorRoundTrip() throws {
        let img = try ImageCodec.decode(try bytes("baseline.jpg"))
        let t = img.tensor()
        XCTAssertEqual(t.shape, [1, 3, img.height, img.width])
        XCTAssertEqual(RGBImage(tensor: t), img)
    }

    func testPILResampleIsBitExact() throws {
        let g = try GoldenFile("ops.safetensors")
        let cases = g.cases("pil.")
        XCTAssertEqual(cases.count, 4)
        for c in cases {
            let (inShape, inValues) = try g.file.integers("\(c).x")
            let (outShape, outValues) = try g.file.integers("\(c).out")
            let src = RGBImage(width: inShape[1], height: inShape[0], pixels: inValues.map { UInt8($0) })
            let filter = PILFilter(rawValue: g.params(c)["filter"] as! String)!
            let got = PILResample.resize(src, width: outShape[1], height: outShape[0], filter: filter)
            let diffs = zip(got.pixels.map(Int.init), outValues).filter { $0 != $1 }
            let maxDiff = diffs.map { abs($0 - $1) }.max() ?? 0
            XCTAssertEqual(diffs.count, 0, "\(c): \(diffs.count) of \(outValues.count) bytes differ from PIL (max \(maxDiff))")
        }
    }
}
