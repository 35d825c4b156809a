#!/usr/bin/env bash
# build-deb.sh - the Debian package (make deb), with Debian's own tools:
# dpkg-shlibdeps for the library dependencies, dpkg-deb to build.
#
# Puts build/nexusapi (NEXUS_BIN overrides), stripped, the systemd units,
# the settings file (packaging/deb/nexusapi.env.head + .env.example, a
# conffile), the man page and the maintainer scripts of packaging/deb/ into
# build/deb/nexusapi_<version>-1_<arch>.deb and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${NEXUS_BIN:-build/nexusapi}
[ -x "$bin" ] || { echo "build-deb: $bin is missing (make build)" >&2; exit 2; }
for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing (make deps)" >&2; exit 2; }
done

src=packaging/deb
version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
out=build/deb
# dpkg-shlibdeps expects the package's files under debian/<package>/
root=$out/debian/nexusapi
rm -rf "$out/debian"
mkdir -p "$root/DEBIAN"

install -D -m 0755 "$bin" "$root/usr/bin/nexusapi"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/nexusapi"
install -D -m 0644 "$src/nexusapi.service" "$root/lib/systemd/system/nexusapi.service"
install -D -m 0644 "$src/nexusapi-worker@.service" \
  "$root/lib/systemd/system/nexusapi-worker@.service"
install -d -m 0755 "$root/etc/nexusapi"
cat "$src/nexusapi.env.head" .env.example > "$root/etc/nexusapi/nexusapi.env"
chmod 0640 "$root/etc/nexusapi/nexusapi.env"  # the group is set by postinst
install -d -m 0755 "$root/usr/share/man/man8" "$root/usr/share/doc/nexusapi"
sed "s/@VERSION@/$version/" "$src/nexusapi.8" | gzip -9n > "$root/usr/share/man/man8/nexusapi.8.gz"
install -m 0644 "$src/copyright" "$root/usr/share/doc/nexusapi/copyright"
printf 'nexusapi (%s-1) unstable; urgency=medium\n\n  * Built from %s.\n\n -- NexusAPI maintainers <maintainers@nexusapi.invalid>  %s\n' \
  "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo source)" "$(date -R)" |
  gzip -9n > "$root/usr/share/doc/nexusapi/changelog.Debian.gz"

# library dependencies, as Debian's packaging computes them
printf 'Source: nexusapi\n\nPackage: nexusapi\nArchitecture: any\n' > "$out/debian/control"
depends=$(cd "$out" && dpkg-shlibdeps -O -edebian/nexusapi/usr/bin/nexusapi |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version-1/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    -e "s/@DEPENDS@/$depends/" "$src/control.in" > "$root/DEBIAN/control"
echo /etc/nexusapi/nexusapi.env > "$root/DEBIAN/conffiles"
install -m 0755 "$src/postinst" "$src/prerm" "$src/postrm" "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum > DEBIAN/md5sums)

deb="$out/nexusapi_${version}-1_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
