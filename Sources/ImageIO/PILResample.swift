// Image.resize as Pillow does it for 8-bit RGB (libImaging/Resample.c), bit for bit:
// separable passes (horizontal, then vertical), filter support scaled by the shrink factor
// (antialiasing), coefficients normalised per output pixel and rounded to 22-bit fixed point,
// 8-bit clipping after each pass. BLIP's and torchvision's image processors resize this way.
import Foundation

public enum PILFilter: String, Sendable, Codable {
    case bilinear, bicubic, lanczos

    var support: Double {
        switch self {
        case .bilinear: return 1
        case .bicubic: return 2
        case .lanczos: return 3
        }
    }

    func weight(_ x: Double) -> Double {
        let ax = abs(x)
        switch self {
        case .bilinear:
            return ax < 1 ? 1 - ax : 0
        case .bicubic:
            let a = -0.5
            if ax < 1 { return ((a + 2) * ax - (a + 3)) * ax * ax + 1 }
            if ax < 2 { return (((ax - 5) * ax + 8) * ax - 4) * a }
            return 0
        case .lanczos:
            func sinc(_ v: Double) -> Double { v == 0 ? 1 : sin(Double.pi * v) / (Double.pi * v) }
            return (x >= -3 && x < 3) ? sinc(x) * sinc(x / 3) : 0
        }
    }

    /// PIL's numeric resample codes (Image.Resampling): 2 bilinear, 3 bicubic, 1 lanczos.
    public init?(pilCode: Int) {
        switch pilCode {
        case 2: self = .bilinear
        case 3: self = .bicubic
        case 1: self = .lanczos
        default: return nil
        }
    }
}

public enum PILResample {
    static let precisionBits = 32 - 8 - 2

    /// Per output pixel: first input index, tap count, fixed-point weights (ksize each).
    static func coefficients(inSize: Int, outSize: Int, filter: PILFilter) -> (bounds: [(Int, Int)], ksize: Int, kk: [Int32]) {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        var bounds = [(Int, Int)](repeating: (0, 0), count: outSize)
        var kk = [Int32](repeating: 0, count: outSize * ksize)
        var pre = [Double](repeating: 0, count: ksize)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let ss = 1 / filterScale
            var xmin = Int(center - support + 0.5)  // truncation toward zero, as C's (int) cast
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            var ww = 0.0
            for x in 0..<ksize { pre[x] = 0 }
            for x in 0..<xmax {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * ss)
                pre[x] = w
                ww += w
            }
            for x in 0..<xmax where ww != 0 { pre[x] /= ww }
            for x in 0..<ksize {
                let v = pre[x] * Double(1 << precisionBits)
                kk[xx * ksize + x] = Int32(v < 0 ? (-0.5 + v).rounded(.towardZero) : (0.5 + v).rounded(.towardZero))
            }
            bounds[xx] = (xmin, xmax)
        }
        return (bounds, ksize, kk)
    }

    @inline(__always)
    static func clip8(_ v: Int32) -> UInt8 {
        if v >= Int32(1 << precisionBits) << 8 { return 255 }
        if v <= 0 { return 0 }
        return UInt8(v >> Int32(precisionBits))
    }

    /// Resizes `image` to width × height with `filter`, exactly as PIL.Image.resize.
    public static func resize(_ image: RGBImage, width: Int, height: Int, filter: PILFilter) -> RGBImage {
        precondition(width > 0 && height > 0, "resize to \(width)×\(height)")
        var src = image.pixels
        var w = image.width, h = image.height
        let half = Int32(1 << (precisionBits - 1))
        if width != w {
            let (bounds, ksize, kk) = coefficients(inSize: w, outSize: width, filter: filter)
            var out = [UInt8](repeating: 0, count: width * h * 3)
            for y in 0..<h {
                for xx in 0..<width {
                    let (xmin, xmax) = bounds[xx]
                    var s0 = half, s1 = half, s2 = half
                    for x in 0..<xmax {
                        let k = kk[xx * ksize + x]
                        let p = (y * w + x + xmin) * 3
                        s0 &+= Int32(src[p]) &* k
                        s1 &+= Int32(src[p + 1]) &* k
                        s2 &+= Int32(src[p + 2]) &* k
                    }
                    let o = (y * width + xx) * 3
                    out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2)
                }
            }
            src = out
            w = width
        }
        if height != h {
            let (bounds, ksize, kk) = coefficients(inSize: h, outSize: height, filter: filter)
            var out = [UInt8](repeating: 0, count: w * height * 3)
            for yy in 0..<height {
                let (ymin, ymax) = bounds[yy]
                for x in 0..<w {
                    var s0 = half, s1 = half, s2 = half
                    for y in 0..<ymax {
                        let k = kk[yy * ksize + y]
                        let p = ((y + ymin) * w + x) * 3
                        s0 &+= Int32(src[p]) &* k
                        s1 &+= Int32(src[p + 1]) &* k
                        s2 &+= Int32(src[p + 2]) &* k
                    }
                    let o = (yy * w + x) * 3
                    out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2)
                }
            }
            src = out
            h = height
        }
        return RGBImage(width: w, height: h, pixels: src)
    }
}
