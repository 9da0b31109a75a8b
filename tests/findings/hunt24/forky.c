// fork-heavy: parent holds many small objects; children churn and exit
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
int main(int c,char**v){ long n=c>1?atol(v[1]):500000; int nf=c>2?atoi(v[2]):200;
 char**p=malloc(n*sizeof(char*)); for(long i=0;i<n;i++){p[i]=malloc(32+i%200); memset(p[i],1,32);} 
 for(int f=0;f<nf;f++){ pid_t pid=fork(); if(pid==0){ for(int i=0;i<2000;i++){ free(p[(i*7919L)%n]); p[(i*7919L)%n]=malloc(64);} char*b=malloc(100000); memset(b,0,100000); free(b); _exit(0);} waitpid(pid,0,0);
  for(int i=0;i<100;i++){long k=(f*1000L+i*31)%n; free(p[k]); p[k]=malloc(48);} }
 puts("ok"); return 0;}
