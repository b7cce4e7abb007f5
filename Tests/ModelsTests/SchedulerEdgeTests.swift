// Every schedule the limits admit must run without a trap: steps 1…1000 × strengths on the edges of
// (0, 1], for the pixel pack's scheduler and the SD 1.x template's (both "leading" with steps_offset 1,
// where steps = 1000 used to put the first timestep at 1000, past ᾱ's end, and kill lgapd with SIGILL).
import Foundation
@testable import Models
import Tensor
import TestSupport
import XCTest

final class SchedulerEdgeTests: XCTestCase {
    let configs = [
        ("pixel pack", Fixtures.repositoryRoot + "/models/cifar10-mini/scheduler"),
        ("sd15 template", Fixtures.path("diffusion/sd15-tiny/scheduler"))
    ]

    /// The strengths on the edges of what validate() admits for `steps`: the smallest that runs one
    /// step, just above it, the middle, just below 1 and 1 itself.
    func edgeStrengths(_ steps: Int) -> [Double] {
        let least = 1.0 / Double(steps)
        return [least, least.nextUp, 0.5, Double(1).nextDown, 1].filter { s in
            (try? PurificationParameters(strength: s, steps: steps, guidance: 3, seed: 0).validate()) != nil
        }
    }

    func testEveryAdmittedScheduleStaysInsideAlphas() throws {
        for (name, folder) in configs {
            let s = try DDIMScheduler(folder: folder)
            let last = s.config.numTrainTimesteps - 1
            let x = Tensor(shape: [1, 1, 1, 2], data: [0.25, -0.5])
            var schedules = 0
            for steps in 1...1000 {
                XCTAssertNil(s.refusal(steps: steps))
                for strength in edgeStrengths(steps) {
                    let ts = s.img2imgTimesteps(steps: steps, strength: strength)
                    XCTAssertFalse(ts.isEmpty, "\(name): steps \(steps) strength \(strength) runs no step")
                    guard let bad = ts.first(where: { $0 < 0 || $0 > last }) else {
                        // Run the scheduler's arithmetic over the whole schedule (a fake model output).
                        var sample = s.addNoise(x, noise: x, timestep: ts[0])
                        for t in ts { sample = s.step(modelOutput: x, timestep: t, sample: sample, steps: steps) }
                        XCTAssert(sample.scalars.allSatisfy(\.isFinite), "\(name): steps \(steps) strength \(strength) gave \(sample.scalars)")
                        schedules += 1
                        continue
                    }
                    XCTFail("\(name): steps \(steps) strength \(strength) has timestep \(bad) outside 0…\(last)")
                }
            }
            XCTAssertGreaterThan(schedules, 4000, name)
        }
    }

    func testClampOnlyTouchesTheScheduleDiffusersCannotRun() throws {
        let s = try DDIMScheduler(folder: configs[0].1)
        // diffusers: leading, T // steps spacing, + steps_offset; its first value for steps = 1000 is 1000.
        XCTAssertEqual(Array(s.timesteps(steps: 1000).prefix(3)), [999, 999, 998])
        XCTAssertEqual(s.timesteps(steps: 50).first, 981)
        XCTAssertEqual(s.img2imgTimesteps(steps: 50, strength: 0.1), [81, 61, 41, 21, 1])
        XCTAssertEqual(s.timesteps(steps: 999).first, 999)
    }

    func testMoreStepsThanTrainingTimestepsIsRefused() throws {
        var config = SchedulerConfig()
        config.numTrainTimesteps = 100
        let s = try DDIMScheduler(config: config)
        XCTAssertNotNil(s.refusal(steps: 101))
        XCTAssertNil(s.refusal(steps: 100))
    }

    /// The whole purifier at the extreme the issue reproduced (steps 1000, strength 1) on the tiny pixel
    /// model: 1000 denoising steps, one image.
    func testPurifierRunsTheLongestAdmittedSchedule() throws {
        let folder = Fixtures.path("diffusion/pixel-tiny")
        let purifier = try DiffusionPurifier(pack: folder, modelSize: (16, 16))
        let image = Tensor(shape: [1, 3, 16, 16], data: (0..<768).map { Float($0 % 17) / 16 })
        let p = PurificationParameters(strength: 1, steps: 1000, guidance: 3, seed: 1)
        let out = try purifier.purify(image, caption: "a cat", parameters: p)
        XCTAssertEqual(out.shape, [1, 3, 16, 16])
        XCTAssert(out.scalars.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 })
    }
}
