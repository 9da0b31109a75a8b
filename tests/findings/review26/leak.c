// Past the budget, a freed big buffer is taken by a small request (rule 3): the small
// block keeps the big buffer's address space; the next big buffer maps and faults anew.
// usage: ./leak N BIG_MB SMALL_KB   (keeps the N small blocks live)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static long vm(const char*k){FILE*f=fopen("/proc/self/status","r");char l[256];long v=-1;
 while(fgets(l,sizeof l,f)) if(!strncmp(l,k,strlen(k))) v=atol(l+strlen(k));fclose(f);return v;}
int main(int c,char**v){int N=atoi(v[1]);size_t B=(size_t)atol(v[2])<<20,S=(size_t)atol(v[3])<<10;
 void**s=calloc(N,sizeof*s);int fails=0;
 for(int i=0;i<N;i++){char*b=malloc(B);if(!b){fails++;continue;}memset(b,1,B);__asm__ volatile(""::"r"(b):"memory");free(b);
  s[i]=malloc(S);if(!s[i]){fails++;continue;}memset(s[i],2,S);}
 printf("VmSize %ld MB VmPeak %ld MB failed %d\n",vm("VmSize:")>>10,vm("VmPeak:")>>10,fails);
 for(int i=0;i<N;i++)free(s[i]);return 0;}
