// The price of /metrics per job, measured where it is paid rather than inferred from two noisy
// daemon runs: the exact calls lgapd makes for each job (DaemonMetrics.job at the door and at the
// end, DaemonMetrics.stages with every stage's time), on `threads` threads at once (the intake and
// recorder threads contend for the same counters), plus one render of the registry per
// `jobsPerScrape` jobs (a scrape every second at that many jobs a second).
import Foundation
import JobModel
import Service

func runMetricsBench(jobs: Int, threads: Int, jobsPerScrape: Int, referenceJobMs: Double) {
    _ = DaemonMetrics.registry  // bootstrapped, as lgapd does when [metrics] endpoint is set
    let metrics = DaemonMetrics()
    let timings = ["decode": 0.4, "caption": 12.0, "purify": 80.0, "classify": 1.5]
    let perThread = jobs / threads
    let t0 = Date()
    DispatchQueue.concurrentPerform(iterations: threads) { worker in
        for i in 0..<perThread {
            metrics.job(JobStatus.accepted.rawValue, nil)
            metrics.job(JobStatus.done.rawValue, nil)
            metrics.stages(timings)
            if worker == 0, (i * threads) % jobsPerScrape == 0 { _ = DaemonMetrics.registry.emitToString() }
        }
    }
    let seconds = Date().timeIntervalSince(t0)
    let renderedBytes = DaemonMetrics.registry.emitToString().utf8.count
    let perJobUs = seconds * 1e6 / Double(perThread)  // each thread's wall time per job it ran
    print("# lgap-bench metrics — \(perThread * threads) jobs on \(threads) thread(s), a render every \(jobsPerScrape) jobs (\(renderedBytes) bytes)")
    print(String(format: "metrics work per job: %.2f µs (one thread's wall time)", perJobUs))
    print(String(format: "share of a %.3f ms job: %.3f%%", referenceJobMs, 100 * perJobUs / (referenceJobMs * 1000)))
}
