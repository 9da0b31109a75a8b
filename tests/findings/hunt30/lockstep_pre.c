// realloc_lockstep after an earlier phase that raised the extent footprint's all-time high.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#define NB 200
int main(int argc,char**argv){ int pre = argc>1?atoi(argv[1]):1200; char* b[NB]; size_t sz[NB]; unsigned long long chk=0;
  // phase 0: pre MB of 4 MB blocks, touched, freed
  int np = pre/4; char** p = malloc(np*sizeof(char*));
  for (int i=0;i<np;i++){ p[i]=malloc(4<<20); memset(p[i],1,4<<20);} for (int i=0;i<np;i++) free(p[i]);
  malloc_trim(0);
  { FILE*f=fopen("/proc/self/clear_refs","w"); fputs("5",f); fclose(f); }
  for(int r=0;r<6;r++){
    for(int i=0;i<NB;i++){ sz[i]=1024; b[i]=malloc(1024); memset(b[i],i,1024);}
    int grow=1; while(grow){ grow=0;
      for(int i=0;i<NB;i++){ size_t lim=(size_t)(1+(i%4))<<20; if(sz[i]<lim){ size_t ns=sz[i]+sz[i]/2+100; if(ns>lim) ns=lim;
          char*n=realloc(b[i],ns); if(!n){puts("OOM");return 1;}
          memset(n+sz[i],i,ns-sz[i]); b[i]=n; sz[i]=ns; grow=1; } } }
    for(int i=0;i<NB;i++){ chk+=sz[i]; b[i]=realloc(b[i],sz[i]/3); free(b[i]); }
  }
  { FILE*f=fopen("/proc/self/status","r"); char l[256]; while(fgets(l,256,f)) if(!strncmp(l,"VmHWM:",6)) printf("after pre: %s", l); fclose(f);} printf("OK %llu\n",chk); return 0;}
