#!/usr/bin/env python3
"""Makes every top-level public type under src/ internal except those named in build/public-api.txt.

    build/internalize.py           rewrite: 'public' -> 'internal' on those declarations (nothing else changes)
    build/internalize.py --check   list them and exit 1 if there are any (nothing is written)

Only access modifiers change, so the commit merges with work that adds files or edits bodies. Run it again after
merging branches that add public types under src/: partial types must agree on their accessibility in every part
(CS0262), and a public type whose members name an internal one does not compile (CS0050-CS0061): such a type either
joins build/public-api.txt (it is then part of the API) or its member stops naming the internal one.
"""
import pathlib, re, sys

root = pathlib.Path(__file__).resolve().parent.parent
keep = set(re.sub(r'#.*', '', (root / 'build/public-api.txt').read_text()).split())
# a declaration may follow attributes on its line ([StructLayout(...)] public struct ...)
decl = re.compile(r'^(?:\[[^\]]*\]\s*)*public (?:(?:static|sealed|abstract|unsafe|partial|readonly|ref|record|file)\s+)*'
                  r'(?:class|struct|interface|enum|record)\s+(\w+)|^(?:\[[^\]]*\]\s*)*public delegate\s+.+?\s+(\w+)\s*[(<]')
check = '--check' in sys.argv[1:]
found = []
for f in sorted((root / 'src').rglob('*.cs')):
    if {'bin', 'obj'} & set(f.relative_to(root).parts): continue
    lines = f.read_text().split('\n')
    hits = [i for i, l in enumerate(lines) if (m := decl.match(l)) and (m.group(1) or m.group(2)) not in keep]
    for i in hits:
        found.append(f'{f.relative_to(root)}:{i + 1}: {lines[i].strip()[:100]}')
        lines[i] = lines[i].replace('public ', 'internal ', 1)
    if hits and not check: f.write_text('\n'.join(lines))
print('\n'.join(found))
print(f"{len(found)} top-level public types not in build/public-api.txt{'' if check else ' made internal'}", file=sys.stderr)
sys.exit(1 if check and found else 0)
