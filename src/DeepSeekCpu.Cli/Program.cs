return DeepSeekCpu.Cli.Commands.Execute(args);
