#!/bin/sh
# Test double of grub-probe (grub-common), installed over /usr/sbin/grub-probe in a
# throwaway root. The real one asks the block layer which device holds a path; a
# chroot on an overlay file system has no such device, so grub-mkconfig would stop
# at its first probe. This answers every --target that grub-mkconfig, 00_header and
# 10_linux of grub-common 2.06-13 ask, as for one ext2 partition /dev/vda1 on an
# MBR disk. The values are invented and matter only in that they are consistent:
# the tests read the kernel command line grub-mkconfig writes, not the root device.
target=
want_target=
for arg in "$@"; do
  if [ -n "$want_target" ]; then target=$arg; want_target=; continue; fi
  case "$arg" in
    --target=*) target=${arg#--target=} ;;
    -t) want_target=1 ;;
  esac
done
case "$target" in
  device) echo /dev/vda1 ;;
  fs) echo ext2 ;;
  fs_uuid) echo 0b1c2d3e-0000-4000-8000-000000000001 ;;
  fs_label) echo root ;;
  partuuid) echo 0b1c2d3e-01 ;;
  partmap) echo msdos ;;
  abstraction|cryptodisk_uuid) ;;
  drive) echo '(hd0,msdos1)' ;;
  compatibility_hint) echo hd0,msdos1 ;;
  hints_string) echo '--hint=hd0,msdos1' ;;
  *) echo "grub-probe stand-in: no answer for --target=$target" >&2; exit 1 ;;
esac
