// The result a finished job publishes (PUB topic "result") and `lgapctl purify` prints: one JSON
// object per job.
import Digest
import Foundation
import Models

public enum ResultMessage {
    public static func object(_ item: JobItem, stages: [String]) -> [String: Any] {
        var o: [String: Any] = ["id": item.id, "status": item.failure?.status ?? "done", "stages": stages,
                                "stages_run": item.stagesRun, "input_sha256": sha(item.input)]
        if let f = item.failure {
            o["reason"] = f.reason
            o["error"] = f.message
        }
        let p = item.parameters
        o["params"] = ["strength": p.strength, "steps": p.steps, "guidance": p.guidance, "eta": p.eta, "ensemble": p.ensemble,
                       "seed": p.seed] as [String: Any]
        if let c = item.caption {
            o["caption"] = c.text
            o["caption_tokens"] = c.tokenIDs
            if let s = c.score { o["caption_score"] = Double(s) }
        }
        if let h = item.purifiedSHA256 { o["purified_sha256"] = h }
        if let pr = item.prediction {
            o["label"] = pr.label
            o["label_index"] = pr.labelIndex
            o["confidence"] = Double(pr.confidence)
            o["top_k"] = pr.topK.map { ["index": $0.index, "label": $0.label, "probability": Double($0.probability)] as [String: Any] }
        }
        if let c = item.consistency { o["consistency"] = c.rawValue }
        o["timings_ms"] = item.timings.mapValues { ($0 * 1000).rounded() / 1000 }
        return o
    }

    public static func json(_ object: [String: Any]) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8))
    }

    static func sha(_ bytes: [UInt8]) -> String { Digest.SHA256.hex(bytes) }
}
