// Binary PPM (P6, maxval ≤ 255) — the simplest lossless format producers can emit without a library.

enum PPM {
    struct Header {
        let width: Int
        let height: Int
        let maxval: Int
        let dataOffset: Int
    }

    /// Parses "P6 <width> <height> <maxval>" with whitespace and # comments, then one whitespace byte.
    static func header(_ data: [UInt8]) throws -> Header {
        guard data.count >= 2, data[0] == UInt8(ascii: "P"), data[1] == UInt8(ascii: "6") else {
            throw ImageError.corrupt(.ppm, "missing P6 magic")
        }
        var i = 2
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0B || c == 0x0C }
        func number() throws -> Int {
            while i < data.count {
                if isSpace(data[i]) {
                    i += 1
                } else if data[i] == UInt8(ascii: "#") {
                    while i < data.count && data[i] != 0x0A { i += 1 }
                } else {
                    break
                }
            }
            var value = 0, digits = 0
            while i < data.count, data[i] >= 0x30, data[i] <= 0x39 {
                value = value * 10 + Int(data[i] - 0x30)
                digits += 1
                i += 1
                if digits > 9 { throw ImageError.corrupt(.ppm, "header number too long") }
            }
            if digits == 0 { throw ImageError.corrupt(.ppm, "truncated or malformed header") }
            return value
        }
        let w = try number(), h = try number(), maxval = try number()
        guard i < data.count, isSpace(data[i]) else { throw ImageError.corrupt(.ppm, "header not followed by whitespace") }
        return Header(width: w, height: h, maxval: maxval, dataOffset: i + 1)
    }

    static func decode(_ data: [UInt8], limits: ImageLimits) throws -> RGBImage {
        let h = try header(data)
        guard h.width > 0, h.height > 0 else { throw ImageError.corrupt(.ppm, "zero width or height") }
        guard h.width <= limits.maxSide, h.height <= limits.maxSide, h.width * h.height <= limits.maxPixels else {
            throw ImageError.tooLarge(.ppm, width: h.width, height: h.height, limits: limits)
        }
        guard h.maxval > 0 && h.maxval <= 255 else {
            throw ImageError.unsupported(.ppm, "maxval \(h.maxval) (only 8-bit PPM, maxval 1…255, is supported)")
        }
        let n = h.width * h.height * 3
        guard data.count - h.dataOffset >= n else {
            throw ImageError.corrupt(.ppm, "truncated pixel data (\(data.count - h.dataOffset) of \(n) bytes)")
        }
        var px = Array(data[h.dataOffset..<(h.dataOffset + n)])
        if h.maxval != 255 {
            for j in 0..<n {
                guard Int(px[j]) <= h.maxval else { throw ImageError.corrupt(.ppm, "sample \(px[j]) above maxval \(h.maxval)") }
                px[j] = UInt8((Int(px[j]) * 255 + h.maxval / 2) / h.maxval)
            }
        }
        return RGBImage(width: h.width, height: h.height, pixels: px)
    }

    static func encode(_ image: RGBImage) -> [UInt8] {
        Array("P6\n\(image.width) \(image.height)\n255\n".utf8) + image.pixels
    }
}

extension ImageCodec {
    public static func encodePPM(_ image: RGBImage) -> [UInt8] { PPM.encode(image) }
}
