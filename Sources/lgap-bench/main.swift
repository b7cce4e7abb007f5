import Foundation
import Tensor
import COpenBLAS

func time(_ f: () -> Void) -> Double { let t = Date(); f(); return Date().timeIntervalSince(t) }
Engine.threads = 1
for (c, hw, n) in [(16, 32, 1), (16, 32, 64), (32, 16, 64), (64, 8, 64)] {
  let x = Tensor(repeating: 0.1, shape: [n, c, hw, hw]), w = Tensor(repeating: 0.01, shape: [c, c, 3, 3])
  _ = conv2d(x, weight: w, padding: (1, 1))
  let r = 20
  let t = time { for _ in 0..<r { _ = conv2d(x, weight: w, padding: (1, 1)) } } / Double(r)
  let flops = 2.0 * Double(n * c * c * 9 * hw * hw)
  print(c, hw, n, String(format: "%.3f ms  %.1f GFLOP/s", t * 1000, flops / t / 1e9))
  // raw gemm of the same shape
  let k = c * 9, nn = hw * hw
  let a = Tensor(repeating: 0.1, shape: [c, k]), b = Tensor(repeating: 0.1, shape: [k, nn * n])
  let cc = Tensor(uninitialized: [c, nn * n])
  let tg = time { for _ in 0..<r { a.withData { ap in b.withData { bp in cc.withFreshData { cp in BLAS.sgemm(m: c, n: nn * n, k: k, a: ap, lda: k, b: bp, ldb: nn * n, c: cp, ldc: nn * n) } } } } } / Double(r)
  print("   gemm one shot", String(format: "%.3f ms  %.1f GFLOP/s", tg * 1000, flops / tg / 1e9))
}
