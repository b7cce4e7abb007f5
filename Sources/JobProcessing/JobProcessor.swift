// The model stages of a job — decode, caption, purify, classify — as functions over micro-batches,
// shared by lgapd's pipeline and `lgapctl purify`, so both run exactly the same steps.
//
// Memory: the purifier's K copies stay at its working size until the classify stage, which restores
// one copy at a time to the input's size (the purified image the provenance hashes and exports),
// then shrinks it to the classifier's input. A large input never holds K full-size copies.
import Digest
import Foundation
import ImageIO
import JobModel
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

    public init(
        limits: ImageLimits = ImageLimits(), keepPurified: Bool = true, purify: Bool = true, emptyCaption: Bool = false,
        progress: (@Sendable () -> Void)? = nil
    ) {
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
    public let consistency: ConsistencyCheck

    public init(pack: Pack, options: ProcessorOptions) {
        self.pack = pack
        self.options = options
        consistency = ConsistencyCheck(pack.manifest)
    }

    /// Stages a job runs with this pack and these options, in order.
    public var stages: [StageName] {
        [.decode] + (pack.captioner != nil ? [.caption] : []) + (pack.purifier != nil && options.purify ? [.purify] : []) + [.classify]
    }

    /// A stage's function over a micro-batch.
    public func run(_ stage: StageName, _ batch: [JobItem]) -> [JobItem] {
        switch stage {
        case .decode: return decode(batch)
        case .caption: return caption(batch)
        case .purify: return purify(batch)
        case .classify: return classify(batch)
        }
    }

    /// All stages in order for one batch (the offline pipeline).
    public func run(_ batch: [JobItem]) -> [JobItem] {
        stages.reduce(batch) { items, stage in run(stage, items) }
    }

    static func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
        let t = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        return (r, Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
    }

    // MARK: decode

    public func decode(_ batch: [JobItem]) -> [JobItem] {
        for item in batch where item.ok {
            let (result, ms): (Result<RGBImage, Error>, Double) = Self.timed {
                Result { try ImageCodec.decode(item.input, format: item.format, limits: options.limits) }
            }
            item.timings[StageName.decode.rawValue] = ms
            switch result {
            case .success(let decoded):
                // classifier_resize before_purification: every later stage sees the classifier's input.
                let img = pack.manifest.resizesBeforePurification ? pack.classifier.resized(decoded) : decoded
                item.image = img
                item.width = img.width
                item.height = img.height
                item.stagesRun.append(.decode)
            case .failure(let e as ImageError):
                item.fail(.rejected(ReasonCode(rawValue: e.reasonCode) ?? .corruptImage, e.description))
            case .failure(let e):
                item.fail(.rejected(.corruptImage, "\(e)"))
            }
        }
        return batch
    }

    // MARK: caption

    public func caption(_ batch: [JobItem]) -> [JobItem] {
        let live = batch.filter { $0.ok && $0.image != nil }
        guard pack.captioner != nil, !live.isEmpty else { return batch }
        do {
            let (captions, ms) = try Self.timed { try pack.caption(live.map { $0.image! }) ?? [] }
            for (item, c) in zip(live, captions) {
                item.caption = c
                item.stagesRun.append(.caption)
                item.timings[StageName.caption.rawValue] = ms / Double(live.count)
            }
        } catch {
            for item in live { item.fail(.failed(.captionError, "\(error)")) }
        }
        return batch
    }

    // MARK: purify

    /// Purifies the batch: items that share a schedule and image size go through one denoising loop
    /// together (each with its own seed, so results do not depend on the batch). If a group fails,
    /// its items are retried one by one so one bad item cannot fail its neighbours.
    public func purify(_ batch: [JobItem]) -> [JobItem] {
        let live = batch.filter { $0.ok && $0.image != nil }
        guard options.purify, pack.purifier != nil else { return batch }
        var groups: [[JobItem]] = []
        for item in live {
            if let i = groups.firstIndex(where: { Self.sameSchedule($0[0], item) }) { groups[i].append(item) } else { groups.append([item]) }
        }
        for group in groups {
            do {
                try purifyGroup(group)
            } catch  where group.count > 1 {
                for item in group {
                    do { try purifyGroup([item]) } catch { item.fail(.failed(.purifyError, "\(error)")) }
                }
            } catch {
                group[0].fail(.failed(.purifyError, "\(error)"))
            }
        }
        return batch
    }

    static func sameSchedule(_ a: JobItem, _ b: JobItem) -> Bool {
        a.parameters.sameSchedule(as: b.parameters) && a.width == b.width && a.height == b.height
    }

    private func purifyGroup(_ group: [JobItem]) throws {
        guard let purifier = pack.purifier else { return }
        let requests = group.map { item in
            PurificationRequest(
                image: item.image!.tensor(), caption: options.emptyCaption ? "" : item.caption?.text ?? "",
                parameters: item.parameters)
        }
        let (outputs, ms) = try Self.timed { try purifier.purifyAtModelSize(requests, progress: options.progress) }
        for (item, out) in zip(group, outputs) {
            item.purified = out
            item.image = nil  // the classify stage needs only the size from here on
            item.timings[StageName.purify.rawValue] = ms / Double(group.count)
            item.stagesRun.append(.purify)
        }
    }

    // MARK: classify

    public func classify(_ batch: [JobItem]) -> [JobItem] {
        let live = batch.filter { $0.ok && ($0.purified != nil || $0.image != nil) }
        guard !live.isEmpty else { return batch }
        let classifier = pack.classifier
        var ms = [Double](repeating: 0, count: live.count)
        var inputs: [Tensor] = []
        var groups: [Int] = []
        for (i, item) in live.enumerated() {
            let (members, t) = Self.timed { classifierInputs(item) }
            ms[i] = t
            inputs += members
            groups.append(members.count)
        }
        let (probabilities, tNet) = Self.timed { softmax(classifier.logits(preprocessed: concat(inputs, axis: 0))) }
        let predictions = EnsembleVote.predictions(probabilities: probabilities, groups: groups, classifier: classifier)
        for (i, (item, p)) in zip(live, predictions).enumerated() {
            item.prediction = p
            item.timings[StageName.classify.rawValue] = ms[i] + tNet / Double(live.count)
            item.stagesRun.append(.classify)
            if let c = item.caption { item.consistency = consistency.flag(caption: c.text, predicted: p.labelIndex) }
        }
        return batch
    }

    /// Whether the classify stage applies the classifier's resize (not when decode did already).
    private var resizeForClassifier: Bool { !pack.manifest.resizesBeforePurification }

    /// The classifier's preprocessed input for each purified copy (or for the image itself without
    /// purification), hashing and keeping the purified images at the input's size on the way.
    private func classifierInputs(_ item: JobItem) -> [Tensor] {
        let classifier = pack.classifier
        guard let purified = item.purified, let purifier = pack.purifier else {
            return item.image.map { [classifier.preprocess([$0], resize: resizeForClassifier)] } ?? []
        }
        var sha = SHA256()
        var out: [Tensor] = []
        for k in 0..<purified.shape[0] {
            let copy = purifier.restore(narrow(purified, axis: 0, start: k, length: 1), height: item.height, width: item.width)
            let image = RGBImage(tensor: copy)
            sha.update(image.pixels)
            if k == 0 && options.keepPurified { item.purifiedPNG = try? ImageCodec.encodePNG(image) }
            out.append(classifier.preprocess([image], resize: resizeForClassifier))
        }
        item.purifiedSHA256 = SHA256.hexString(sha.finalize())
        item.purified = nil
        return out
    }
}
