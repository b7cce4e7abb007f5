// lgapctl: the command line for lgap (offline pipeline, job submission, history queries).
import ArgumentParser
import Service

@main
struct LgapCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lgapctl",
        abstract: "Run lgap's pipeline offline, submit jobs to lgapd and query its history.",
        version: Daemon.versionText(tool: "lgapctl"),
        subcommands: [
            Submit.self, History.self, Show.self, Stats.self, Export.self, Replay.self, Retry.self, Nodes.self, Purify.self, Classify.self,
            Keygen.self, ResultsProxy.self, Backup.self, Prune.self, PackCommand.self
        ])
}
