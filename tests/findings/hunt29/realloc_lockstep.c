#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define NB 200
int main(){ char* b[NB]; size_t sz[NB]; unsigned long long chk=0;
  for(int r=0;r<6;r++){
    for(int i=0;i<NB;i++){ sz[i]=1024; b[i]=malloc(1024); memset(b[i],i,1024);} 
    int grow=1; while(grow){ grow=0;
      for(int i=0;i<NB;i++){ size_t lim=(size_t)(1+(i%4))<<20; if(sz[i]<lim){ size_t ns=sz[i]+sz[i]/2+100; if(ns>lim) ns=lim;
          char*n=realloc(b[i],ns); if(!n){puts("OOM");return 1;}
          if(n[sz[i]-1]!=(char)i||n[0]!=(char)i){fprintf(stderr,"CORRUPT %d\n",i);abort();}
          memset(n+sz[i],i,ns-sz[i]); b[i]=n; sz[i]=ns; grow=1; } } }
    for(int i=0;i<NB;i++){ chk+=sz[i]+(unsigned char)b[i][sz[i]/2]; 
      // shrink back half
      b[i]=realloc(b[i],sz[i]/3); if(b[i][sz[i]/3-1]!=(char)i){fprintf(stderr,"CORRUPT shrink\n");abort();} free(b[i]); }
  }
  printf("OK %llu\n",chk); return 0;}
