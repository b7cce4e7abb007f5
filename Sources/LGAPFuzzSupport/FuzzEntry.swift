// What the libFuzzer targets (Fuzz/) and their regression tests call: lgap's parsers of untrusted
// input, with the daemon's limits. Each must return or throw — any crash, hang or unbounded
// allocation is a bug.
import ImageIO
import Messaging

public enum FuzzEntry {
    /// Limits small enough that the fuzzer explores rejection paths instead of allocating.
    public static let limits = ImageLimits(maxSide: 4096, maxPixels: 4_194_304)

    public static func jobHeader(_ bytes: [UInt8]) {
        _ = try? JobHeader.parse(bytes, limits: HeaderLimits())
    }

    /// Decodes `bytes` as `format` ("png", "jpeg", "ppm"); a decoded image must respect the limits.
    public static func decode(_ bytes: [UInt8], format: String) {
        guard let f = ImageFormat(name: format) else { return }
        _ = try? ImageCodec.dimensions(bytes)
        if let img = try? ImageCodec.decode(bytes, format: f, limits: limits) {
            precondition(
                img.width <= limits.maxSide && img.height <= limits.maxSide && img.width * img.height <= limits.maxPixels,
                "decoder returned an image beyond the limits")
            precondition(img.pixels.count == img.width * img.height * 3, "pixel buffer size mismatch")
        }
    }
}
