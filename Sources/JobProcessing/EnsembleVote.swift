// One prediction from K purified copies: the classifier's softmax probabilities are averaged (a soft
// vote), so the label and confidence are the mean probabilities'.
import Foundation
import Models
import Tensor

public enum EnsembleVote {
    /// probabilities: [sum of group sizes, classes] softmax rows, groups back to back.
    public static func predictions(probabilities probs: Tensor, groups: [Int], classifier: ImageClassifier, topK: Int = 5) -> [Prediction] {
        let k = classifier.config.numClasses
        let p = probs.scalars
        var offset = 0
        return groups.map { size in
            var mean = [Float](repeating: 0, count: k)
            for i in 0..<size { for c in 0..<k { mean[c] += p[(offset + i) * k + c] / Float(size) } }
            offset += size
            // Log of the mean probabilities as logits: softmax(log p) = p, so the ranking and
            // confidence are the averaged probabilities.
            let logits = Tensor(shape: [1, k], data: mean.map { logf(max($0, 1e-30)) })
            return classifier.predictions(fromLogits: logits, topK: topK)[0]
        }
    }
}
