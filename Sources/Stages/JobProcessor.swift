// The model stages of a job — decode, caption, purify, classify — as functions over micro-batches,
// shared by lgapd's pipeline and `lgapctl purify` so both run exactly the same steps.
import Digest
import Foundation
import ImageIO
import Models
import Tensor

public struct ProcessorOptions: Sendable {
    public var limits: ImageLimits
    /// Keep a PNG of the first purified image for export.
    public var keepPurified: Bool
    /// Skip purification (the undefended pipeline: caption + classify only).
    public var purify: Bool
    /// Purify with the empty caption instead of the generated one (the no-guidance ablation).
    public var emptyCaption: Bool
    /// Called after every denoising step (lgapd's watchdog heartbeat during long purifications).
    public var progress: (@Sendable () -> Void)?

    public init(limits: ImageLimits = ImageLimits(), keepPurified: Bool = true, purify: Bool = true, emptyCaption: Bool = false,
                progress: (@Sendable () -> Void)? = nil) {
        self.limits = limits
        self.keepPurified = keepPurified
        self.purify = purify
        self.emptyCaption = emptyCaption
        self.progress = progress
    }
}

public final class JobProcessor: Sendable {
    public let pack: Pack
    public let options: ProcessorOptions

    public init(pack: Pack, options: ProcessorOptions) {
        self.pack = pack
        self.options = options
    }

    /// Stages this processor runs, in order.
    public var stages: [String] {
        pack.stages.filter { $0 != "purify" || options.purify }
    }

    static func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
        let t = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        return (r, Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
    }

    public func decode(_ batch: [JobItem]) -> [JobItem] {
        for item in batch where item.ok {
            let (result, ms): (Result<RGBImage, Error>, Double) = Self.timed {
                Result { try ImageCodec.decode(item.input, format: item.format == "auto" ? nil : ImageFormat(name: item.format),
                                               limits: options.limits) }
            }
            item.timings["decode"] = ms
            switch result {
            case .success(let img):
                item.image = img
                item.stagesRun.append("decode")
            case .failure(let e as ImageError):
                item.fail("rejected", e.reasonCode, e.description)
            case .failure(let e):
                item.fail("rejected", "corrupt_image", "\(e)")
            }
        }
        return batch
    }

    public func caption(_ batch: [JobItem]) -> [JobItem] {
        let live = batch.filter { $0.ok && $0.image != nil }
        guard pack.captioner != nil, !live.isEmpty else { return batch }
        do {
            let (captions, ms) = try Self.timed { try pack.caption(live.map { $0.image! }) ?? [] }
            for (item, c) in zip(live, captions) {
                item.caption = c
                item.stagesRun.append("caption")
                item.timings["caption"] = ms / Double(live.count)
            }
        } catch {
            for item in live { item.fail("failed", "caption_error", "\(error)") }
        }
        return batch
    }

    /// Purifies the batch: items that share a schedule and image size go through one denoising loop
    /// together (each with its own seed, so results do not depend on the batch). If a group fails,
    /// its items are retried one by one so one bad item cannot fail its neighbours.
    public func purify(_ batch: [JobItem]) -> [JobItem] {
        let live = batch.filter { $0.ok && $0.image != nil }
        guard options.purify, pack.purifier != nil else {
            for item in live { item.purified = [item.image!] }
            return batch
        }
        var groups: [[JobItem]] = []
        for item in live {
            if let i = groups.firstIndex(where: { Self.sameSchedule($0[0], item) }) { groups[i].append(item) } else { groups.append([item]) }
        }
        for group in groups {
            do {
                try purifyGroup(group)
            } catch where group.count > 1 {
                for item in group {
                    do { try purifyGroup([item]) } catch { item.fail("failed", "purify_error", "\(error)") }
                }
            } catch {
                group[0].fail("failed", "purify_error", "\(error)")
            }
        }
        return batch
    }

    static func sameSchedule(_ a: JobItem, _ b: JobItem) -> Bool {
        a.parameters.sameSchedule(as: b.parameters) && a.image?.width == b.image?.width && a.image?.height == b.image?.height
    }

    private func purifyGroup(_ group: [JobItem]) throws {
        let inputs = group.map { item in
            (image: item.image!, caption: options.emptyCaption ? "" : item.caption?.text ?? "", parameters: item.parameters)
        }
        let (outputs, ms) = try Self.timed { try pack.purify(inputs, progress: options.progress) }
        for (item, out) in zip(group, outputs) {
            item.purified = out
            item.timings["purify"] = ms / Double(group.count)
            item.stagesRun.append("purify")
            var bytes: [UInt8] = []
            for img in out { bytes += img.pixels }
            item.purifiedSHA256 = SHA256.hex(bytes)
            if options.keepPurified { item.purifiedPNG = try? ImageCodec.encodePNG(out[0]) }
        }
    }

    public func classify(_ batch: [JobItem]) -> [JobItem] {
        // Without a purify stage (no purifier, or --no-purify) the decoded image is classified.
        let live = batch.filter { $0.ok && (!$0.purified.isEmpty || $0.image != nil) }
        guard !live.isEmpty else { return batch }
        let (predictions, ms) = Self.timed { pack.classify(live.map { $0.purified.isEmpty ? [$0.image!] : $0.purified }) }
        for (item, p) in zip(live, predictions) {
            item.prediction = p
            item.timings["classify"] = ms / Double(live.count)
            item.stagesRun.append("classify")
            if let c = item.caption { item.consistency = pack.consistency(caption: c.text, predicted: p.labelIndex) }
        }
        return batch
    }

    /// All stages in order for one batch (the offline pipeline).
    public func run(_ batch: [JobItem]) -> [JobItem] {
        classify(purify(caption(decode(batch))))
    }
}
