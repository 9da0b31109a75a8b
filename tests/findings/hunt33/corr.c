#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#define MB (1ul<<20)
__attribute__((noinline)) static void* fill(void*p,int v,size_t n){ memset(p,v,n); __asm__ volatile("" ::"r"(p):"memory"); return p; }
static long rss_kb(void){ long a,b; FILE*f=fopen("/proc/self/statm","r"); if(fscanf(f,"%ld %ld",&a,&b)!=2) b=0; fclose(f); return b*4; }
static long lck_kb(void){ FILE*f=fopen("/proc/self/status","r"); char l[256]; long v=-1; while(fgets(l,256,f)) if(!strncmp(l,"VmLck:",6)) v=atol(l+6); fclose(f); return v; }
static int allzero(const char*p,size_t n){ for(size_t i=0;i<n;i++) if(p[i]) return 0; return 1; }
static int fails=0;
#define CHECK(c,...) do{ if(!(c)){ fails++; printf("FAIL: " __VA_ARGS__); printf("\n"); } }while(0)
int main(int argc,char**argv){
  int lock = argc>1 && !strcmp(argv[1],"mlock");
  if (lock) { if (mlockall(MCL_CURRENT|MCL_FUTURE)) { perror("mlockall"); return 2; } }
  for (int round=0; round<3; round++) {
    size_t small=24*MB, big=40*MB;
    char* a=malloc(small); fill(a,0xAB,small);
    char* b=malloc(big); fill(b,0xCD,big);
    long r0=rss_kb();
    free(a);
    long r1=rss_kb();
    printf("round %d: free(copy) rss %ld -> %ld KB, VmLck %ld\n", round, r0, r1, lck_kb());
    // calloc of the same size: must read zero
    char* c=calloc(1,small);
    printf("  calloc same region? %s\n", c==a?"yes":"no");
    CHECK(allzero(c,small),"calloc not zero round %d", round);
    fill(c,0xEE,small);
    free(c);
    // malloc same size after give-back
    char* d=malloc(small); printf("  malloc same region? %s\n", d==a?"yes":"no"); fill(d,0x11,small);
    // now grow: a bigger one (fresh), free d -> given back again, then calloc slightly smaller/bigger
    char* e=malloc(big*2); fill(e,0x22,big*2);
    free(d);
    char* f=calloc(1,small-3*4096); CHECK(allzero(f,small-3*4096),"calloc smaller not zero"); free(f);
    char* g=calloc(1,small+4*MB); CHECK(allzero(g,small+4*MB),"calloc bigger not zero"); free(g);
    // malloc_trim then calloc
    free(b); free(e);
    malloc_trim(0);
    char* h=calloc(1,big); CHECK(allzero(h,big),"calloc after trim not zero"); free(h);
    // realloc of a given-back-region block: grow & shrink keep content
    char* k=malloc(small); fill(k,0x33,small); char* l=malloc(big); fill(l,0x44,big); free(k);
    char* m=malloc(small); fill(m,0x55,small); m=realloc(m,small*3); for(size_t i=0;i<small;i++) if(m[i]!=0x55){CHECK(0,"realloc grow lost data"); break;}
    m=realloc(m,small/2); for(size_t i=0;i<small/2;i++) if(m[i]!=0x55){CHECK(0,"realloc shrink lost data"); break;}
    free(m); free(l);
    // fork with a given-back region cached
    char* n=malloc(small); fill(n,1,small); char* o=malloc(big); fill(o,2,big); free(n);
    pid_t pid=fork();
    if(pid==0){ char* q=calloc(1,small); int z=allzero(q,small); free(q); char*q2=malloc(big*3); fill(q2,3,big*3); free(q2); free(o); _exit(z?0:1);}
    int st; waitpid(pid,&st,0); CHECK(WIFEXITED(st)&&WEXITSTATUS(st)==0,"child calloc not zero / crashed st=%d",st);
    free(o);
  }
  printf("end rss %ld KB VmLck %ld KB; fails=%d\n", rss_kb(), lck_kb(), fails);
  return fails!=0;
}
