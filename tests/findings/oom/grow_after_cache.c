// gcc -O2 grow_after_cache.c -o grow_after_cache
// ./grow_after_cache ; LD_PRELOAD=bazel-bin/hakmem/libhakmem.so ./grow_after_cache
// RLIMIT_AS = VmSize + 600 MiB. 10 x 30 MiB blocks freed (hakmem caches them),
// then one 200 MiB buffer grown by realloc to 350 MiB. hakmem: the in-place
// mremap fails (the cache holds the address space; no purge on that failure),
// the move maps a 350 MiB destination (after a purge), mremap(MREMAP_FIXED)
// onto it fails, and the destination is left mapped for good; realloc returns
// NULL. After free(), 357 MiB stay mapped with nothing live. glibc: ok.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
static long vm_mib(void){char b[128]={0};int fd=open("/proc/self/statm",O_RDONLY);read(fd,b,127);close(fd);return atol(b)*4/1024;}
int main(void){ const size_t M=1<<20; struct rlimit rl; rl.rlim_cur=rl.rlim_max=(vm_mib()+600)*M; setrlimit(RLIMIT_AS,&rl);
 void* c[10]; for(int i=0;i<10;i++){c[i]=malloc(30*M); memset(c[i],1,4096);} for(int i=0;i<10;i++) free(c[i]);
 char* a=malloc(200*M); memset(a,'a',200*M);
 printf("VmSize %ld MiB\n", vm_mib()); errno=0; char* a2=realloc(a,350*M);
 printf("realloc(200 MiB -> 350 MiB) = %s errno %d; VmSize %ld MiB\n", a2?"ok":"NULL", errno, vm_mib());
 if(a2) a=a2; free(a); char* big=malloc(500*M); printf("after free: malloc(500 MiB) = %s, VmSize %ld MiB\n", big?"ok":"NULL", vm_mib()); return 0;}
