using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace DeepSeekCpu.Generation;

/// <summary>
/// JSON Schema (the subset OpenAI's structured outputs accept, json-schema.org draft 2020-12 meanings) to a GBNF
/// <see cref="Grammar"/> whose sentences are the JSON texts the schema accepts: type (one or a list), properties with
/// required (the properties in the schema's order; optional ones may be left out; no others, as strict mode's
/// additionalProperties false), additionalProperties as a schema for objects without properties, items, minItems,
/// maxItems, enum, const, anyOf/oneOf, $ref to #/$defs or #/definitions, minLength/maxLength. Keywords that would
/// change which texts are valid and are not enforced here (pattern, format, minimum, ...) are refused with an
/// <see cref="ArgumentException"/> naming keyword and place, never ignored; annotations (title, description, ...) are
/// ignored. Numbers have at most 16 integer digits, 16 fraction digits and a 3-digit exponent, and blanks between
/// tokens are bounded, so every answer can end.
/// </summary>
internal static class JsonSchemaGrammar
{
    /// <summary>Any JSON object (OpenAI response_format json_object).</summary>
    public static Grammar AnyObject() => Grammar.Parse("root ::= lead object\n" + Primitives);

    public static Grammar FromSchema(string schemaJson)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(schemaJson); }
        catch (JsonException e) { throw new ArgumentException($"the JSON schema is not valid JSON: {e.Message}"); }
        using (doc) return Grammar.Parse(ToGbnf(doc.RootElement));
    }

    /// <summary>The GBNF text for <paramref name="schema"/> (rule root).</summary>
    public static string ToGbnf(JsonElement schema)
    {
        var c = new Converter(schema);
        string root = c.Rule(schema, "#");
        return "root ::= lead " + root + "\n" + c.Rules + Primitives;
    }

    /// <summary>Blanks (lead: before the value, as an R1 answer starts "\n\n"; ws: between tokens, a newline and
    /// indentation at most), strings, numbers and the any-value rules.</summary>
    private const string Primitives = """
        lead ::= [ \t\n]{0,4}
        ws ::= | " " | "\n" [ \t]{0,20}
        char ::= [^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
        string ::= "\"" char* "\""
        integer ::= "-"? ("0" | [1-9] [0-9]{0,15})
        number ::= integer ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?
        boolean ::= "true" | "false"
        null ::= "null"
        value ::= object | array | string | number | boolean | null
        object ::= "{" ws ( string ws ":" ws value ( ws "," ws string ws ":" ws value )* ws )? "}"
        array ::= "[" ws ( value ( ws "," ws value )* ws )? "]"

        """;

    private static readonly HashSet<string> Annotations =
        ["title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly", "strict", "name", "$defs", "definitions"];

    private sealed class Converter(JsonElement root)
    {
        public readonly StringBuilder Rules = new();
        private readonly Dictionary<string, string> _named = new(StringComparer.Ordinal);
        private int _n;

        /// <summary>A rule name (or a primitive's) that matches <paramref name="s"/>; <paramref name="at"/> is its place, for errors.</summary>
        public string Rule(JsonElement s, string at)
        {
            if (s.ValueKind == JsonValueKind.True) return "value";
            if (s.ValueKind != JsonValueKind.Object) throw new ArgumentException($"schema {at} must be an object (or true)");
            foreach (var p in s.EnumerateObject())
                if (!Annotations.Contains(p.Name) && p.Name is not ("type" or "properties" or "required" or "additionalProperties" or "items"
                        or "minItems" or "maxItems" or "enum" or "const" or "anyOf" or "oneOf" or "$ref" or "minLength" or "maxLength"))
                    throw new ArgumentException($"schema {at}: keyword '{p.Name}' is not supported by constrained output");
            if (s.TryGetProperty("$ref", out var r)) return Ref(r, at);
            if (s.TryGetProperty("const", out var cst)) return Define(Literal(cst));
            if (s.TryGetProperty("enum", out var en))
            {
                if (en.ValueKind != JsonValueKind.Array || en.GetArrayLength() == 0) throw new ArgumentException($"schema {at}.enum must be a non-empty array");
                return Define(string.Join(" | ", en.EnumerateArray().Select(Literal)));
            }
            foreach (string key in new[] { "anyOf", "oneOf" })
                if (s.TryGetProperty(key, out var any))
                {
                    if (any.ValueKind != JsonValueKind.Array || any.GetArrayLength() == 0) throw new ArgumentException($"schema {at}.{key} must be a non-empty array");
                    return Define(string.Join(" | ", any.EnumerateArray().Select((x, i) => Rule(x, $"{at}.{key}[{i}]"))));
                }
            if (!s.TryGetProperty("type", out var type)) return "value";
            if (type.ValueKind == JsonValueKind.Array)
                return Define(string.Join(" | ", type.EnumerateArray().Select((t, i) => Typed(s, Str(t, $"{at}.type[{i}]"), at))));
            return Typed(s, Str(type, at + ".type"), at);
        }

        private string Typed(JsonElement s, string type, string at) => type switch
        {
            "string" => StringRule(s, at),
            "number" => "number",
            "integer" => "integer",
            "boolean" => "boolean",
            "null" => "null",
            "array" => ArrayRule(s, at),
            "object" => ObjectRule(s, at),
            _ => throw new ArgumentException($"schema {at}.type '{type}' is unknown"),
        };

        private string StringRule(JsonElement s, string at)
        {
            int min = Count(s, "minLength", at) ?? 0;
            int? max = Count(s, "maxLength", at);
            if (min == 0 && max == null) return "string";
            if (max < min) throw new ArgumentException($"schema {at}: maxLength is below minLength");
            return Define($"\"\\\"\" char{{{min},{(max?.ToString(CultureInfo.InvariantCulture) ?? "")}}} \"\\\"\"");
        }

        private string ArrayRule(JsonElement s, string at)
        {
            string item = s.TryGetProperty("items", out var items) ? Rule(items, at + ".items") : "value";
            int min = Count(s, "minItems", at) ?? 0;
            int? max = Count(s, "maxItems", at);
            if (max < min) throw new ArgumentException($"schema {at}: maxItems is below minItems");
            if (max == 0) return Define("\"[\" ws \"]\"");
            string more = $"( ws \",\" ws {item} ){{{Math.Max(0, min - 1)},{(max is int m ? (m - 1).ToString(CultureInfo.InvariantCulture) : "")}}}";
            string list = $"{item} {more}";
            return Define(min == 0 ? $"\"[\" ws ( {list} ws )? \"]\"" : $"\"[\" ws {list} ws \"]\"");
        }

        private string ObjectRule(JsonElement s, string at)
        {
            if (!s.TryGetProperty("properties", out var props) || props.ValueKind != JsonValueKind.Object || !props.EnumerateObject().Any())
            {
                // a map: string keys, values of additionalProperties (any value when absent or true; none when false)
                if (s.TryGetProperty("additionalProperties", out var ap) && ap.ValueKind == JsonValueKind.False) return Define("\"{\" ws \"}\"");
                string v = s.TryGetProperty("additionalProperties", out ap) && ap.ValueKind != JsonValueKind.True ? Rule(ap, at + ".additionalProperties") : "value";
                return Define($"\"{{\" ws ( string ws \":\" ws {v} ( ws \",\" ws string ws \":\" ws {v} )* ws )? \"}}\"");
            }
            var required = new HashSet<string>(StringComparer.Ordinal);
            if (s.TryGetProperty("required", out var req))
            {
                if (req.ValueKind != JsonValueKind.Array || !req.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String))
                    throw new ArgumentException($"schema {at}.required must be an array of strings");
                foreach (var x in req.EnumerateArray()) required.Add(x.GetString()!);
            }
            var members = props.EnumerateObject().Select(p =>
                (Name: p.Name, Required: required.Contains(p.Name), Rule: Define($"{NameLiteral(p.Name)} ws \":\" ws {Rule(p.Value, $"{at}.properties.{p.Name}")}"))).ToList();
            foreach (string name in required)
                if (!members.Any(m => m.Name == name)) throw new ArgumentException($"schema {at}.required names '{name}', which is not among the properties");
            // members in schema order; after the first written one each is "," + member. Rest(i): what may follow once
            // member i-1 is written (or at the start, i = 0): required ones must come, optional ones may.
            var rest = new string[members.Count + 1];
            rest[members.Count] = "";
            for (int i = members.Count - 1; i >= 0; i--)
            {
                string one = $"ws \",\" ws {members[i].Rule} {rest[i + 1]}";
                rest[i] = members[i].Required ? one : Define(rest[i + 1].Length > 0 ? $"{one} | {rest[i + 1]}" : $"( {one} )?");
            }
            // the first written member: the first required one, or any optional one before it
            var firsts = new List<string>();
            for (int i = 0; i < members.Count; i++)
            {
                firsts.Add($"{members[i].Rule} {rest[i + 1]}");
                if (members[i].Required) break;
            }
            bool anyRequired = members.Any(m => m.Required);
            string body = string.Join(" | ", firsts);
            return Define(anyRequired ? $"\"{{\" ws ( {body} ) ws \"}}\"" : $"\"{{\" ws ( ( {body} ) ws )? \"}}\"");
        }

        /// <summary>A new rule for <paramref name="expr"/>.</summary>
        private string Define(string expr)
        {
            string name = "r" + (++_n).ToString(CultureInfo.InvariantCulture);
            Rules.Append(name).Append(" ::= ").Append(expr).Append('\n');
            return name;
        }

        private string Ref(JsonElement r, string at)
        {
            string path = Str(r, at + ".$ref");
            if (_named.TryGetValue(path, out string? known)) return known;
            string[] parts = path.Split('/');
            if (parts.Length != 3 || parts[0] != "#" || parts[1] is not ("$defs" or "definitions")
                || !root.TryGetProperty(parts[1], out var defs) || !defs.TryGetProperty(parts[2], out var target))
                throw new ArgumentException($"schema {at}.$ref '{path}' must point to #/$defs/NAME or #/definitions/NAME of the schema");
            string name = "r" + (++_n).ToString(CultureInfo.InvariantCulture);
            _named[path] = name;   // before the body: a recursive definition refers to itself by this name
            string body = Rule(target, path);   // may write rules of its own: before this one's line
            Rules.Append(name).Append(" ::= ").Append(body).Append('\n');
            return name;
        }

        private static int? Count(JsonElement s, string key, string at)
        {
            if (!s.TryGetProperty(key, out var v)) return null;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n < 0 || n > 10_000)
                throw new ArgumentException($"schema {at}.{key} must be an integer from 0 to 10000");
            return n;
        }

        private static string Str(JsonElement v, string at) =>
            v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new ArgumentException($"schema {at} must be a string");

        /// <summary>A JSON value written compactly, as a GBNF literal.</summary>
        private static string Literal(JsonElement v) => GbnfLiteral(w => v.WriteTo(w));

        /// <summary>A property name as the JSON string that names it, as a GBNF literal.</summary>
        private static string NameLiteral(string name) => GbnfLiteral(w => w.WriteStringValue(name));

        /// <summary>The compact JSON that <paramref name="write"/> writes (Utf8JsonWriter: no serializer, no reflection),
        /// quoted as a GBNF literal.</summary>
        private static string GbnfLiteral(Action<Utf8JsonWriter> write)
        {
            var json = new ArrayBufferWriter<byte>();
            using (var w = new Utf8JsonWriter(json, JsonOptions)) write(w);
            var sb = new StringBuilder("\"");
            foreach (char ch in Encoding.UTF8.GetString(json.WrittenSpan))
                sb.Append(ch switch { '"' => "\\\"", '\\' => "\\\\", '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", _ => ch.ToString() });
            return sb.Append('"').ToString();
        }

        private static readonly JsonWriterOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    }
}
