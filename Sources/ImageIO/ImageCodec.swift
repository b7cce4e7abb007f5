// Decoding PNG, JPEG and binary PPM (P6) to RGB, and encoding PNG.
//
// Every decoder reads the dimensions from the header and checks them against `ImageLimits` before
// allocating pixel memory, so a 100000×100000 header costs nothing. Errors say what was wrong.
import CImageIO
import Foundation

public enum ImageFormat: String, Sendable, Codable, CaseIterable {
    case png, jpeg, ppm

    /// Recognises the format from its magic bytes.
    public static func sniff(_ data: some Collection<UInt8>) -> ImageFormat? {
        let head = Array(data.prefix(8))
        if head.count >= 8 && head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        if head.count >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF { return .jpeg }
        if head.count >= 2 && head[0] == UInt8(ascii: "P") && head[1] == UInt8(ascii: "6") { return .ppm }
        return nil
    }

    /// Accepts the names used in job headers ("png", "jpeg"/"jpg", "ppm").
    public init?(name: String) {
        switch name.lowercased() {
        case "png": self = .png
        case "jpeg", "jpg": self = .jpeg
        case "ppm": self = .ppm
        default: return nil
        }
    }
}

public struct ImageLimits: Sendable, Equatable, Codable {
    /// Longest accepted side in pixels.
    public var maxSide: Int
    /// Most pixels (width × height) accepted.
    public var maxPixels: Int

    public init(maxSide: Int = 8192, maxPixels: Int = 16_777_216) {
        self.maxSide = maxSide
        self.maxPixels = maxPixels
    }
}

public enum ImageError: Error, CustomStringConvertible, Equatable {
    case unknownFormat
    case corrupt(ImageFormat, String)
    case tooLarge(ImageFormat, width: Int, height: Int, limits: ImageLimits)
    case unsupported(ImageFormat, String)
    case encodeFailed(String)

    public var description: String {
        switch self {
        case .unknownFormat: return "unrecognised image format (expected PNG, JPEG or binary PPM)"
        case .corrupt(let f, let m): return "corrupt \(f.rawValue.uppercased()): \(m)"
        case .tooLarge(let f, let w, let h, let l):
            return "\(f.rawValue.uppercased()) of \(w)×\(h) exceeds the limit (side ≤ \(l.maxSide), pixels ≤ \(l.maxPixels))"
        case .unsupported(let f, let m): return "unsupported \(f.rawValue.uppercased()): \(m)"
        case .encodeFailed(let m): return "PNG encoding failed: \(m)"
        }
    }

    /// A short machine-readable reason for provenance records ("corrupt", "too_large", ...).
    public var reasonCode: String {
        switch self {
        case .unknownFormat: return "unknown_format"
        case .corrupt: return "corrupt_image"
        case .tooLarge: return "image_too_large"
        case .unsupported: return "unsupported_image"
        case .encodeFailed: return "encode_failed"
        }
    }
}

public enum ImageCodec {
    /// Decodes `data` as `format` (nil: sniff the magic bytes).
    public static func decode(_ data: [UInt8], format: ImageFormat? = nil, limits: ImageLimits = ImageLimits()) throws -> RGBImage {
        guard let f = format ?? ImageFormat.sniff(data) else { throw ImageError.unknownFormat }
        switch f {
        case .png: return try decodeWithC(data, f, limits, lgap_png_decode)
        case .jpeg: return try decodeWithC(data, f, limits, lgap_jpeg_decode)
        case .ppm: return try PPM.decode(data, limits: limits)
        }
    }

    public static func decode(contentsOf path: String, limits: ImageLimits = ImageLimits()) throws -> RGBImage {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageError.corrupt(.png, "cannot read \(path)")
        }
        return try decode([UInt8](data), limits: limits)
    }

    /// Width and height from the header alone; variants the decoder would refuse (CMYK JPEG, 16-bit
    /// PPM) are refused here already, so the door can turn them away before acknowledging them.
    public static func dimensions(_ data: [UInt8]) throws -> (format: ImageFormat, width: Int, height: Int) {
        guard let f = ImageFormat.sniff(data) else { throw ImageError.unknownFormat }
        var w: Int32 = 0, h: Int32 = 0
        var msg = [CChar](repeating: 0, count: 256)
        let rc: Int32
        switch f {
        case .png: rc = data.withUnsafeBufferPointer { lgap_png_header($0.baseAddress, $0.count, &w, &h, &msg, msg.count) }
        case .jpeg: rc = data.withUnsafeBufferPointer { lgap_jpeg_header($0.baseAddress, $0.count, &w, &h, &msg, msg.count) }
        case .ppm:
            let header = try PPM.header(data)
            guard header.maxval > 0 && header.maxval <= 255 else {
                throw ImageError.unsupported(.ppm, "maxval \(header.maxval) (only 8-bit PPM, maxval 1…255, is supported)")
            }
            return (f, header.width, header.height)
        }
        let text = String(decoding: msg.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if rc == Int32(LGAP_IMG_UNSUPPORTED) { throw ImageError.unsupported(f, text) }
        if rc != 0 { throw ImageError.corrupt(f, text) }
        return (f, Int(w), Int(h))
    }

    public static func encodePNG(_ image: RGBImage) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var msg = [CChar](repeating: 0, count: 256)
        let rc = image.pixels.withUnsafeBufferPointer {
            lgap_png_encode($0.baseAddress, Int32(image.width), Int32(image.height), &out, &size, &msg, msg.count)
        }
        defer { lgap_buffer_free(out) }
        guard rc == 0, let out else {
            throw ImageError.encodeFailed(String(decoding: msg.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    private typealias CDecoder = (UnsafePointer<UInt8>?, Int, Int64, Int64, UnsafeMutablePointer<lgap_image>?) -> Int32

    private static func decodeWithC(_ data: [UInt8], _ f: ImageFormat, _ limits: ImageLimits, _ fn: CDecoder) throws -> RGBImage {
        var img = lgap_image()
        let rc = data.withUnsafeBufferPointer { fn($0.baseAddress, $0.count, Int64(limits.maxSide), Int64(limits.maxPixels), &img) }
        defer { lgap_image_free(&img) }
        let message = withUnsafeBytes(of: img.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        switch rc {
        case Int32(LGAP_IMG_OK):
            guard let p = img.pixels, img.width > 0, img.height > 0 else { throw ImageError.corrupt(f, "empty image") }
            let n = Int(img.width) * Int(img.height) * 3
            return RGBImage(width: Int(img.width), height: Int(img.height), pixels: Array(UnsafeBufferPointer(start: p, count: n)))
        case Int32(LGAP_IMG_TOO_LARGE):
            let dims = (try? dimensions(data)) ?? (f, 0, 0)
            throw ImageError.tooLarge(f, width: dims.1, height: dims.2, limits: limits)
        case Int32(LGAP_IMG_UNSUPPORTED):
            throw ImageError.unsupported(f, message)
        default:
            throw ImageError.corrupt(f, message.isEmpty ? "decoder failed" : message)
        }
    }
}
