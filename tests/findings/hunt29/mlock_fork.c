#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
static void st(const char*tag){ FILE*f=fopen("/proc/self/status","r"); char l[256]; fprintf(stderr,"[%s]",tag);
  while(fgets(l,sizeof l,f)) if(!strncmp(l,"VmLck",5)||!strncmp(l,"VmRSS",5)){ l[strlen(l)-1]=0; fprintf(stderr," %s",l);} fprintf(stderr,"\n"); fclose(f);}
int main(){ void* big[16]; for(int i=0;i<16;i++){ big[i]=malloc((size_t)(i+1)<<20); memset(big[i],1,(size_t)(i+1)<<20);} 
  st("pre");
  if(mlockall(MCL_CURRENT|MCL_FUTURE)){ perror("mlockall"); }
  st("locked");
  unsigned long long s=0;
  for(int r=0;r<40;r++){
    for(int i=0;i<16;i++){ free(big[i]); size_t z=((size_t)((i*7+r)%16)+1)<<20; big[i]=malloc(z); memset(big[i],r,z); s+=z; }
    for(int i=0;i<16;i+=2){ size_t z=((size_t)((i*7+r)%16)+1)<<20; char*n=realloc(big[i],z*2); if(!n){puts("OOM");return 1;} if(n[z-1]!=(char)r){fprintf(stderr,"CORRUPT\n");abort();} big[i]=n; memset(n+z,r,z); }
    void* sm[1000]; for(int k=0;k<1000;k++) sm[k]=malloc(16+k*8); for(int k=0;k<1000;k++) free(sm[k]);
  }
  st("churn");
  if(munlockall()) perror("munlockall");
  st("unlocked");
  for(int i=0;i<16;i++) free(big[i]);
  st("freed");
  pid_t p=fork();
  if(p==0){ void* c[64]; for(int i=0;i<64;i++){ c[i]=malloc((size_t)(i%8+1)<<18); memset(c[i],2,(size_t)(i%8+1)<<18);} for(int i=0;i<64;i++) free(c[i]); st("child"); _exit(7);} 
  int ws; waitpid(p,&ws,0); if(!WIFEXITED(ws)||WEXITSTATUS(ws)!=7){ fprintf(stderr,"CHILD BAD status=%d\n",ws); return 2;}
  printf("OK %llu\n",s); return 0;}
