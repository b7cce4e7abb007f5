// torch.Generator (CPU) reproduced: the same Mersenne Twister (mt19937) seeded as
// manual_seed(seed), and torch.randn's CPU sampling layout (ATen's normal_fill: uniforms for the
// whole tensor, Box–Muller in blocks of 16 — the first 8 values of a block pair with the next 8 —
// and the last block redrawn when the size is not a multiple of 16; tensors smaller than 16 use the
// double-precision normal_distribution path). So a purification with seed N draws the same noise
// as diffusers with torch.Generator().manual_seed(N).
import Foundation
import Tensor

public struct TorchGenerator: Sendable {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624
    private var nextDoubleNormal: Double?

    public init(seed: UInt64) {
        // at::mt19937 takes the low 32 bits of the seed.
        state[0] = UInt32(truncatingIfNeeded: seed)
        for j in 1..<624 {
            state[j] = 1812433253 &* (state[j - 1] ^ (state[j - 1] >> 30)) &+ UInt32(j)
        }
        index = 624
    }

    private mutating func twist() {
        for i in 0..<624 {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7fff_ffff)
            var v = state[(i + 397) % 624] ^ (y >> 1)
            if y & 1 != 0 { v ^= 0x9908_b0df }
            state[i] = v
        }
        index = 0
    }

    /// The next 32-bit output of mt19937.
    public mutating func next32() -> UInt32 {
        if index >= 624 { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    /// at::uniform_real_distribution<float>(0, 1): 24 random bits / 2^24.
    mutating func uniformFloat() -> Float {
        Float(next32() & 0xFF_FFFF) * (1.0 / Float(1 << 24))
    }

    /// at::uniform_real_distribution<double>(0, 1) from a 64-bit draw (53 bits / 2^53).
    mutating func uniformDouble() -> Double {
        let hi = UInt64(next32()), lo = UInt64(next32())
        let r = (hi << 32) | lo
        return Double(r & ((1 << 53) - 1)) * (1.0 / Double(UInt64(1) << 53))
    }

    /// at::normal_distribution<double>: Box–Muller with a cached second value.
    mutating func normalDouble() -> Double {
        if let cached = nextDoubleNormal {
            nextDoubleNormal = nil
            return cached
        }
        let u1 = uniformDouble(), u2 = uniformDouble()
        let r = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        nextDoubleNormal = r * sin(theta)
        return r * cos(theta)
    }

    private static func boxMuller16(_ d: UnsafeMutablePointer<Float>) {
        for j in 0..<8 {
            let u1 = 1 - d[j], u2 = d[j + 8]
            let radius = (-2 * logf(u1)).squareRoot()
            let theta = Float(2.0 * Double.pi) * u2
            d[j] = radius * cosf(theta)
            d[j + 8] = radius * sinf(theta)
        }
    }

    /// torch.randn(shape, generator=self) on CPU, float32.
    public mutating func randn(_ shape: [Int]) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let n = out.count
        out.withFreshData { p in
            if n < 16 {
                for i in 0..<n { p[i] = Float(normalDouble()) }
                return
            }
            for i in 0..<n { p[i] = uniformFloat() }
            var i = 0
            while i + 16 <= n {
                TorchGenerator.boxMuller16(p + i)
                i += 16
            }
            if n % 16 != 0 {
                let tail = p + n - 16
                for j in 0..<16 { tail[j] = uniformFloat() }
                TorchGenerator.boxMuller16(tail)
            }
        }
        return out
    }
}
