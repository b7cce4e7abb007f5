// Images for the service tests: the committed fixtures (Tests/Fixtures/blip/images, Tests/Fixtures/images)
// and bad ones made here — truncated, bit-flipped, and PNG headers claiming huge sizes (built like
// tools/goldens/make_image_goldens.py builds bomb.png).
import Foundation
import TestSupport

public enum TestImages {
    public static func bytes(_ fixture: String) throws -> [UInt8] {
        let path = Fixtures.path(fixture)
        guard let data = FileManager.default.contents(atPath: path) else { throw DaemonError(description: "cannot read \(path)") }
        return [UInt8](data)
    }

    /// Good images of every supported kind: the 16 CIFAR-sized PNGs and the codec fixtures.
    public static func good() throws -> [(name: String, bytes: [UInt8])] {
        let blip = (0..<16).map { String(format: "blip/images/%02d.png", $0) }
        let codecs = [
            "rgb.png", "rgba.png", "gray.png", "palette.png", "interlaced.png", "rgb16.png",
            "baseline.jpg", "progressive.jpg", "gray.jpg", "rgb.ppm"
        ].map { "images/" + $0 }
        return try (blip + codecs).map { ($0, try bytes($0)) }
    }

    public static var png: [UInt8] { get throws { try bytes("blip/images/00.png") } }
    public static var jpeg: [UInt8] { get throws { try bytes("images/baseline.jpg") } }

    /// A PNG cut inside its image data: the header still parses, the pixels do not.
    public static var truncatedPNG: [UInt8] { get throws { let b = try bytes("blip/images/01.png"); return Array(b.prefix(b.count * 2 / 3)) } }

    /// A JPEG cut inside its entropy-coded data (after the start-of-scan header).
    public static var truncatedJPEG: [UInt8] {
        get throws {
            let b = try bytes("images/baseline.jpg")
            guard let sos = (0..<b.count - 1).first(where: { b[$0] == 0xFF && b[$0 + 1] == 0xDA }) else {
                throw DaemonError(description: "baseline.jpg has no SOS marker")
            }
            return Array(b.prefix(sos + (b.count - sos) / 2))
        }
    }

    /// A JPEG cut before its frame header: refused from the header alone.
    public static var jpegWithoutFrame: [UInt8] { get throws { Array(try bytes("images/baseline.jpg").prefix(24)) } }

    /// A PNG whose compressed image data has bytes flipped (the IDAT CRC no longer matches).
    public static var corruptPNG: [UInt8] {
        get throws {
            var b = try bytes("blip/images/02.png")
            guard let idat = (0..<b.count - 4).first(where: { b[$0..<$0 + 4].elementsEqual("IDAT".utf8) }) else {
                throw DaemonError(description: "02.png has no IDAT chunk")
            }
            for i in (idat + 20)..<(idat + 40) { b[i] ^= 0xA5 }
            return b
        }
    }

    /// baseline.jpg with its frame header (SOF0) patched to claim width×height.
    public static func jpegClaiming(width: UInt16, height: UInt16) throws -> [UInt8] {
        var b = try bytes("images/baseline.jpg")
        guard let sof = (0..<b.count - 9).first(where: { b[$0] == 0xFF && b[$0 + 1] == 0xC0 }) else {
            throw DaemonError(description: "baseline.jpg has no SOF0 marker")
        }
        // FFC0, length (2), precision (1), height (2), width (2)
        b[sof + 5] = UInt8(height >> 8); b[sof + 6] = UInt8(height & 0xFF)
        b[sof + 7] = UInt8(width >> 8); b[sof + 8] = UInt8(width & 0xFF)
        return b
    }

    /// A valid PNG header (signature, IHDR with correct CRC) claiming width×height RGB pixels, followed by
    /// a small IDAT of compressed zeros and IEND: a decompression bomb's shape.
    public static func pngClaiming(width: UInt32, height: UInt32) -> [UInt8] {
        func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let body = Array(type.utf8) + data
            return be32(UInt32(data.count)) + body + be32(crc32(body))
        }
        let ihdr = be32(width) + be32(height) + [8, 2, 0, 0, 0]  // 8-bit RGB, deflate, no filter, no interlace
        // zlib stream of a few stored zero bytes: valid framing, far too little data for the claimed size.
        let idat: [UInt8] = [0x78, 0x01, 0x01, 0x04, 0x00, 0xFB, 0xFF, 0, 0, 0, 0, 0x00, 0x04, 0x00, 0x01]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", idat) + chunk("IEND", [])
    }

    /// CRC-32 (ISO-HDLC, as PNG chunks use).
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 1 ? 0xEDB8_8320 : 0) }
        }
        return c ^ 0xFFFF_FFFF
    }
}
