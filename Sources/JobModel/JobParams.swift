// A job's requested purification overrides (the header's "params"): each field optional, filled from
// the configuration and the pack's defaults at admission, then fixed for the job's lifetime.

public struct JobParams: Codable, Equatable, Sendable {
    public var strength: Double?
    public var steps: Int?
    public var guidance: Double?
    public var seed: UInt64?
    public var ensemble: Int?
    public var eta: Double?

    public init(
        strength: Double? = nil, steps: Int? = nil, guidance: Double? = nil, seed: UInt64? = nil,
        ensemble: Int? = nil, eta: Double? = nil
    ) {
        self.strength = strength; self.steps = steps; self.guidance = guidance
        self.seed = seed; self.ensemble = ensemble; self.eta = eta
    }

    public var isEmpty: Bool { self == JobParams() }
}
