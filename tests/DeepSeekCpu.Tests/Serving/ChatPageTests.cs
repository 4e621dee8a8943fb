using System.Globalization;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.Playwright;
using Xunit;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>
/// One headless Chromium for the chat page's tests: Debian's <c>chromium</c> package driven by Playwright (its
/// <c>executablePath</c> pointed at it; Playwright's own browser downloads are not used). test.sh installs the package
/// when it is missing; without it these tests fail with a message saying so, never pass silently.
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    private IPlaywright? _playwright;
    public IBrowser Browser { get; private set; } = null!;

    /// <summary>$CHROMIUM, else chromium or chromium-browser on the PATH.</summary>
    public static string? FindChromium()
    {
        if (Environment.GetEnvironmentVariable("CHROMIUM") is { Length: > 0 } env) return File.Exists(env) ? env : null;
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            foreach (string name in new[] { "chromium", "chromium-browser" })
                if (File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        return null;
    }

    public async ValueTask InitializeAsync()
    {
        string chromium = FindChromium() ?? throw new InvalidOperationException(
            "the chat page tests need Chromium: install Debian's package (apt-get install -y chromium; test.sh does) or set CHROMIUM=/path/to/chromium");
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new() { ExecutablePath = chromium, Headless = true, Timeout = 60_000 });
    }

    public async ValueTask DisposeAsync()
    {
        if (Browser != null) await Browser.DisposeAsync();
        _playwright?.Dispose();
    }
}

/// <summary>
/// The chat page at / in a real browser, against the real server on loopback: it shows the model, streams the demo
/// model's answer (greedy, so it must be the Python reference's story), shows an R1 model's reasoning in its
/// collapsible block, and its stop button ends the generation on the server. It loads nothing from anywhere else.
/// </summary>
public sealed class ChatPageTests(BrowserFixture browser) : IClassFixture<BrowserFixture>, IAsyncDisposable
{
    private static readonly float Bound = 90_000;   // ms, for each wait in the page (generous: the suite runs beside it on 2 cores)
    private WebApplication _app = null!;
    private ChatEngine _engine = null!;
    private IDisposable? _owned;
    private ScriptedModel? _scripted;
    private IBrowserContext _context = null!;
    private readonly List<string> _requested = [];

    private async Task<IPage> Open(ChatEngine engine, string id, IDisposable? owned = null)
    {
        (_engine, _owned) = (engine, owned);
        _app = OpenAiServer.Build(engine, id, "http://127.0.0.1:0");
        await _app.StartAsync();
        _context = await browser.Browser.NewContextAsync();
        var page = await _context.NewPageAsync();
        page.SetDefaultTimeout(Bound);
        Assertions.SetDefaultExpectTimeout(Bound);   // Expect's own default is 5 s
        page.Request += (_, r) => { lock (_requested) _requested.Add(r.Url); };
        await page.GotoAsync(_app.Urls.First() + "/");
        return page;
    }

    public async ValueTask DisposeAsync()
    {
        if (_scripted != null) _scripted.Gated = false;
        if (_context != null) await _context.DisposeAsync();
        if (_app != null) { await _app.StopAsync(); await _app.DisposeAsync(); }
        _engine?.Dispose();
        _owned?.Dispose();
    }

    private void AssertOnlyOwnRequests()
    {
        string own = _app.Urls.First() + "/";
        lock (_requested)
        {
            Assert.NotEmpty(_requested);
            Assert.All(_requested, u => Assert.StartsWith(own, u));
        }
    }

    [Fact]
    public async Task The_page_streams_the_demo_models_answer()
    {
        var lm = LocalModel.Load(TestPaths.Stories260K);
        var page = await Open(new ChatEngine(lm.Model, lm.Tokenizer), "stories260K", lm);
        await Assertions.Expect(page.Locator("#model")).ToContainTextAsync("stories260K");

        await page.ClickAsync("#settings-toggle");
        await page.FillAsync("#temperature", "0");
        await page.FillAsync("#max-tokens", "24");
        await page.FillAsync("#prompt", "Once upon a time");
        await page.ClickAsync("#send");

        var answer = page.Locator(".msg.assistant").Last;
        await Assertions.Expect(answer).ToHaveAttributeAsync("data-state", "done");
        // the chat of a model without a template is its messages as plain text: the same prompt as the completion
        Assert.Equal(OpenAiServerTests.ReferenceStory(24), await answer.Locator(".answer").TextContentAsync());
        string stats = await answer.Locator(".stats").TextContentAsync() ?? "";
        Assert.StartsWith("24 tokens · ", stats);
        Assert.Contains("finish: length", stats);
        Assert.Matches(@"^\d+\.\d tokens/s$", await page.Locator("#speed").TextContentAsync());
        Assert.True(await answer.Locator(".reasoning").IsHiddenAsync());   // no reasoning from this model
        Assert.Equal("Once upon a time", await page.Locator(".msg.user .text").TextContentAsync());
        AssertOnlyOwnRequests();
    }

    [Fact]
    public async Task Reasoning_streams_into_its_block_and_stop_ends_the_generation()
    {
        var (model, tok, reasoning, _) = ScriptedModel.R1(string.Concat(Enumerable.Repeat("Let me think about it. ", 60)), "\n\nDone.");
        _scripted = model;
        model.Gated = true;
        var page = await Open(new ChatEngine(model, tok), "r1-scripted");
        await page.FillAsync("#prompt", "Why is the sky blue?");
        await page.Keyboard.PressAsync("Enter");   // Enter sends

        await model.Steps(6);   // the prompt and five more tokens of reasoning
        var answer = page.Locator(".msg.assistant").Last;
        await Assertions.Expect(answer.Locator(".reasoning")).ToBeVisibleAsync();
        await Assertions.Expect(answer.Locator(".reasoning pre")).ToContainTextAsync("Let me think");
        Assert.True(await answer.Locator("details.reasoning").GetAttributeAsync("open") != null);
        await Assertions.Expect(page.Locator("#stop")).ToBeEnabledAsync();
        Assert.True(await page.Locator("#send").IsDisabledAsync());

        await page.ClickAsync("#stop");
        await Assertions.Expect(answer).ToHaveAttributeAsync("data-state", "stopped");
        Assert.Contains("stopped", await answer.Locator(".stats").TextContentAsync());
        await Assertions.Expect(page.Locator("#send")).ToBeEnabledAsync();
        string shown = await answer.Locator(".reasoning pre").TextContentAsync() ?? "";
        Assert.StartsWith(shown, reasoning);

        // the server lets the request go: passes run one at a time (50 ms apart) until its slot is free, so it
        // generates a few tokens more at most, not the script's hundreds
        var until = DateTime.UtcNow.AddSeconds(20);
        while (_engine.Load.BusySlots > 0 && DateTime.UtcNow < until)
            if (await model.TryStep(TimeSpan.FromMilliseconds(50))) await Task.Delay(50);
        Assert.Equal(0, _engine.Load.BusySlots);
        // counted as a request whose client left (499), with the tokens it generated
        using var http = new HttpClient { BaseAddress = new Uri(_app.Urls.First()) };
        string metrics;
        do metrics = await http.GetStringAsync("/metrics");
        while (!metrics.Contains("""deepseekcpu_requests_total{route="/v1/chat/completions",status="499"} 1""") && DateTime.UtcNow < until);
        Assert.Contains("""deepseekcpu_requests_total{route="/v1/chat/completions",status="499"} 1""", metrics);
        string generated = metrics.Split('\n').Single(l => l.StartsWith("deepseekcpu_generation_tokens_total ", StringComparison.Ordinal));
        Assert.InRange(double.Parse(generated.Split(' ')[1], CultureInfo.InvariantCulture), 5, 40);
        Assert.True(model.Script.Length > 100);
        AssertOnlyOwnRequests();
    }
}
