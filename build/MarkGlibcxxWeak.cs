// MSBuild inline task (RoslynCodeTaskFactory, Directory.Build.targets): makes TorchSharp's native glue load on
// Debian 12. libLibTorchSharp.so (TorchSharp 0.107.0) asks for GLIBCXX_3.4.32 only for the marker symbol
// _ZSt21ios_base_library_initv, which no relocation uses; Debian 12's libstdc++ (GCC 12) stops at GLIBCXX_3.4.30,
// so the loader refuses the library. Marking that one version requirement weak (VER_FLG_WEAK in its Vernaux entry)
// lets the loader accept it; where the version exists the flag changes nothing. Checked facts: ENGINEERING.md.
// Only copies in the build/publish output are changed: the file is rewritten to a new file and renamed over the old
// one, so a hard link into the NuGet cache is never written through.
// (Compiled by MSBuild against netstandard: no File.Move overwrite overload.)
// ELF layout: System V gABI (section headers) and the LSB "Symbol Versioning" chapter (Verneed/Vernaux, versym).
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class MarkGlibcxxWeak : Task
{
    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

    private const string Version = "GLIBCXX_3.4.32";
    private const string Marker = "_ZSt21ios_base_library_initv";

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            string path = item.ItemSpec;
            if (!File.Exists(path)) continue;
            try
            {
                string result = Patch(path);
                Log.LogMessage(MessageImportance.Low, path + ": " + result);
            }
            catch (Exception e)
            {
                Log.LogError(path + ": cannot mark " + Version + " weak: " + e.Message);
            }
        }
        return !Log.HasLoggedErrors;
    }

    private static string Patch(string path)
    {
        byte[] f = File.ReadAllBytes(path);
        if (f.Length < 64 || f[0] != 0x7f || f[1] != (byte)'E' || f[2] != (byte)'L' || f[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (f[4] != 2 || f[5] != 1) throw new InvalidDataException("expected a 64-bit little-endian ELF file");
        long shoff = (long)BitConverter.ToUInt64(f, 0x28);
        int shentsize = BitConverter.ToUInt16(f, 0x3A), shnum = BitConverter.ToUInt16(f, 0x3C);
        // section header fields (Elf64_Shdr): sh_type @4, sh_offset @0x18, sh_size @0x20, sh_link @0x28, sh_info @0x2C
        int Type(int i) => (int)BitConverter.ToUInt32(f, (int)(shoff + (long)i * shentsize + 4));
        long Offset(int i) => (long)BitConverter.ToUInt64(f, (int)(shoff + (long)i * shentsize + 0x18));
        long Size(int i) => (long)BitConverter.ToUInt64(f, (int)(shoff + (long)i * shentsize + 0x20));
        int Link(int i) => (int)BitConverter.ToUInt32(f, (int)(shoff + (long)i * shentsize + 0x28));
        int Info(int i) => (int)BitConverter.ToUInt32(f, (int)(shoff + (long)i * shentsize + 0x2C));
        string Str(long table, long at)
        {
            long end = table + at;
            while (f[end] != 0) end++;
            return Encoding.ASCII.GetString(f, (int)(table + at), (int)(end - table - at));
        }

        int verneed = -1, versym = -1, dynsym = -1;
        for (int i = 0; i < shnum; i++)
        {
            switch ((uint)Type(i))
            {
                case 0x6ffffffe: verneed = i; break;   // SHT_GNU_verneed
                case 0x6fffffff: versym = i; break;    // SHT_GNU_versym
                case 11: dynsym = i; break;            // SHT_DYNSYM
            }
        }
        if (verneed < 0) throw new InvalidDataException("no .gnu.version_r section");

        // Vernaux entries: vna_hash u32, vna_flags u16, vna_other u16 (the version index), vna_name u32, vna_next u32
        long strtab = Offset(Link(verneed));
        long need = Offset(verneed);
        for (int n = 0; n < Info(verneed); n++)
        {
            int count = BitConverter.ToUInt16(f, (int)need + 2);
            long aux = need + BitConverter.ToUInt32(f, (int)need + 8);
            for (int a = 0; a < count; a++)
            {
                int flags = BitConverter.ToUInt16(f, (int)aux + 4), index = BitConverter.ToUInt16(f, (int)aux + 6);
                if (Str(strtab, BitConverter.ToUInt32(f, (int)aux + 8)) == Version)
                {
                    if ((flags & 2) != 0) return Version + " already weak";
                    CheckOnlyMarker(index);
                    f[aux + 4] = (byte)(flags | 2);   // VER_FLG_WEAK
                    var time = File.GetLastWriteTimeUtc(path);
                    string temp = path + ".weak-tmp";
                    File.WriteAllBytes(temp, f);
                    File.SetLastWriteTimeUtc(temp, time);   // keeps MSBuild's copy incremental (same size and time)
                    File.Delete(path);                      // unlinks a hard link; the linked file is untouched
                    File.Move(temp, path);
                    return "marked " + Version + " weak";
                }
                aux += BitConverter.ToUInt32(f, (int)aux + 12);
            }
            need += BitConverter.ToUInt32(f, (int)need + 12);
        }
        return "does not need " + Version;

        // Weakening is only safe if nothing but the marker symbol is bound to that version.
        void CheckOnlyMarker(int index)
        {
            if (versym < 0 || dynsym < 0) throw new InvalidDataException("no .gnu.version or .dynsym section");
            long syms = Offset(dynsym), names = Offset(Link(dynsym)), count = Size(dynsym) / 24, vs = Offset(versym);
            for (long s = 0; s < count; s++)
            {
                int v = BitConverter.ToUInt16(f, (int)(vs + 2 * s)) & 0x7fff;
                if (v != index) continue;
                string name = Str(names, BitConverter.ToUInt32(f, (int)(syms + 24 * s)));
                if (name != Marker) throw new InvalidDataException("symbol " + name + " needs " + Version + "; only " + Marker + " may");
            }
        }
    }
}
