using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace DeepSeekCpu.Server;

/// <summary>
/// The chat page at <c>/</c>: the files of <c>wwwroot/</c>, embedded in this assembly (no build step, nothing to
/// deploy beside the server), each served at its own name, <c>index.html</c> at <c>/</c>. A Content-Security-Policy
/// of 'self' lets the page load nothing from anywhere else, and run no inline script.
/// </summary>
internal static class ChatPage
{
    private const string Prefix = "wwwroot/";

    public static void Map(WebApplication app)
    {
        var assembly = typeof(ChatPage).Assembly;
        foreach (string resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            string name = resource[Prefix.Length..];
            byte[] bytes = Read(assembly, resource);
            string type = Path.GetExtension(name) switch
            {
                ".html" => "text/html; charset=utf-8",
                ".js" => "text/javascript; charset=utf-8",
                ".css" => "text/css; charset=utf-8",
                ".svg" => "image/svg+xml",
                _ => "application/octet-stream",
            };
            RequestDelegate serve = async ctx =>
            {
                ctx.Response.ContentType = type;
                ctx.Response.Headers.CacheControl = "no-cache";
                ctx.Response.Headers.ContentSecurityPolicy = "default-src 'self'";
                ctx.Response.Headers.XContentTypeOptions = "nosniff";
                await ctx.Response.Body.WriteAsync(bytes, ctx.RequestAborted);
            };
            app.MapGet("/" + name, serve);
            if (name == "index.html") app.MapGet("/", serve);
        }
    }

    private static byte[] Read(Assembly assembly, string resource)
    {
        using var s = assembly.GetManifestResourceStream(resource)!;
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }
}
