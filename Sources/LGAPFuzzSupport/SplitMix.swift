// SplitMix64: a tiny deterministic generator, so a mutated input that fails can be rebuilt from its
// seed and index (used by the wire fuzzer in lgap-stress and by the fuzz regression tests).
public struct SplitMix: Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform-ish in 0..<n (n ≤ 0 gives 0).
    public mutating func int(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    public mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
}
