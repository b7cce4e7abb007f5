import ArgumentParser

@main
struct LgapCtl: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lgapctl", abstract: "lgap command line")
}
