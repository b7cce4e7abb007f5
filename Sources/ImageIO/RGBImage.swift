// 8-bit RGB images: what decoders produce and encoders take, and their float tensor views.
import Tensor

public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// Row-major, interleaved R, G, B (height × width × 3 bytes).
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(
            width > 0 && height > 0 && pixels.count == width * height * 3,
            "RGBImage \(width)×\(height) needs \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// [1, 3, H, W] with values in [0, 1] (x / 255, as torchvision's ToTensor).
    public func tensor() -> Tensor {
        let plane = width * height
        let out = Tensor(uninitialized: [1, 3, height, width])
        out.withFreshData { p in
            pixels.withUnsafeBufferPointer { src in
                for i in 0..<plane {
                    for c in 0..<3 { p[c * plane + i] = Float(src[i * 3 + c]) / 255 }
                }
            }
        }
        return out
    }

    /// From [1, 3, H, W] (or [3, H, W]) in [0, 1]: clamp, scale by 255 and round half to even —
    /// the same as torch's (x.clamp(0,1) * 255).round().to(uint8).
    public init(tensor t: Tensor) {
        let shape = t.rank == 4 ? Array(t.shape.dropFirst()) : t.shape
        precondition(
            shape.count == 3 && shape[0] == 3 && (t.rank == 3 || t.shape[0] == 1),
            "RGBImage(tensor:) needs [1, 3, H, W] or [3, H, W], got \(t.shape)")
        let h = shape[1], w = shape[2], plane = h * w
        var px = [UInt8](repeating: 0, count: plane * 3)
        t.withData { p in
            for i in 0..<plane {
                for c in 0..<3 {
                    let v = (min(max(p[c * plane + i], 0), 1) * 255).rounded(.toNearestOrEven)
                    px[i * 3 + c] = UInt8(v)
                }
            }
        }
        self.init(width: w, height: h, pixels: px)
    }
}
